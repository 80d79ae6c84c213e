"""The modern track: today's models, today's optimizers, AlgoPerf's time-to-target scoring.

``python -m benchmarks run --track modern [--quick|--standard|--full]`` trains the tasks of
:data:`benchmarks.comparison.tasks.TRACKS` ``["modern"]`` (LM-fortunes, ViT-FMNIST, MLP-EMT,
SS-csbm) with the optimizers of :mod:`.optimizers`, through the same runner, listing, sharding
and Ray executor as the paper's track; :mod:`.scoring` and :mod:`.report` score the run the
way MLCommons AlgoPerf does (time to a validation target, performance profiles), next to the
paper's A-bar.
"""
