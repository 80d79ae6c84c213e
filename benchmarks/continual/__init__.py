"""Continual learning: does CoRe's freezing help? (``python -m benchmarks continual``).

Three scenarios (:mod:`.scenarios`): a lifelong machine-learning potential on EMT Cu-Au
clusters whose data arrive in physically different stages (trained sequentially, or on
all data seen so far, the lMLP way), the same potential trained to convergence on
stationary data, and permuted digits. The optimizers (:mod:`.optimizers`) are Adam, AdamW,
RPROP, CoRe with and without freezing, Adam with Synaptic Intelligence
(:mod:`.baselines`) and CoRe freezing random weights (:mod:`.freezing`), the control that
says whether *importance* is what helps. :mod:`.training` trains all seeds of one
configuration in one vmapped program, :mod:`.runner` saves each configuration as it
finishes and :mod:`.report` writes the tables and figures.
"""
