"""The speed and accuracy studies of core_optax, one module per `python -m benchmarks` verb.

Each study module has ``add_arguments(parser)`` (its options) and ``main(args)``;
:mod:`benchmarks.__main__` gives each its verb. :mod:`benchmarks.studies.timing` holds what
the step timings share.
"""
