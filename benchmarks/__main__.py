"""Command line: ``python -m benchmarks {run,report,vmap-speedup} ...``.

  python -m benchmarks run [--quick|--standard|--full] [--tasks ...] [--optimizers ...]
                           [--seeds N] [--out DIR]
  python -m benchmarks report DIR [DIR ...] [--to REPORT_DIR]
  python -m benchmarks vmap-speedup [--task AEF] [--optimizer CoRe] [--seeds 5] [--mode quick]
"""

from __future__ import annotations

import argparse
import pathlib
import time

import jax

from benchmarks.comparison import optimizers as optimizers_lib
from benchmarks.comparison import report as report_lib
from benchmarks.comparison import runner
from benchmarks import vmap_speedup
from benchmarks.comparison.tasks import TASKS

RUNS = pathlib.Path(__file__).parent / "runs"


def _enable_compilation_cache() -> None:
  """Reuses compiled programs across runs (and across tasks whose programs coincide)."""
  jax.config.update("jax_compilation_cache_dir", str(RUNS / "jax_cache"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  commands = parser.add_subparsers(dest="command", required=True)

  run = commands.add_parser("run", help="train and score; resumes an interrupted run")
  modes = run.add_mutually_exclusive_group()
  for mode, text in (("quick", "recommended learning rate per optimizer, tiny data (default)"),
                     ("standard", "learning-rate grid, cut data and epochs (2 CPU cores, ~2 h "
                      "for the image tasks)"),
                     ("full", "the paper's protocol")):
    modes.add_argument(f"--{mode}", dest="mode", action="store_const", const=mode, help=text)
  run.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
  run.add_argument("--optimizers", nargs="+", choices=list(optimizers_lib.OPTIMIZERS),
                   default=list(optimizers_lib.OPTIMIZERS))
  run.add_argument("--seeds", type=int, help="seeds per configuration (quick 3, standard 5, "
                   "full 20)")
  run.add_argument("--out", type=pathlib.Path, help="output directory (default "
                   "benchmarks/runs/<mode>)")

  report = commands.add_parser("report", help="rebuild tables and figures of run directories")
  report.add_argument("dirs", type=pathlib.Path, nargs="+", help="run directories of one mode "
                      "and seeds, reported together")
  report.add_argument("--to", type=pathlib.Path, help="report directory (default DIR/report; "
                      "required for several runs)")

  speedup = commands.add_parser("vmap-speedup", help="time vmapped seeds against a Python loop")
  speedup.add_argument("--task", choices=list(TASKS), default="AEF")
  speedup.add_argument("--optimizer", choices=list(optimizers_lib.OPTIMIZERS), default="CoRe")
  speedup.add_argument("--seeds", type=int, default=5)
  speedup.add_argument("--mode", choices=["quick", "standard", "full"], default="quick")
  return parser


def main() -> None:
  args = _parser().parse_args()
  _enable_compilation_cache()
  if args.command == "run":
    mode = args.mode or "quick"
    out = args.out or RUNS / mode
    start = time.perf_counter()
    runner.run(out, [TASKS[t] for t in args.tasks],
               [optimizers_lib.OPTIMIZERS[o] for o in args.optimizers], mode,
               args.seeds or runner.DEFAULT_SEEDS[mode])
    print(report_lib.build([out], list(optimizers_lib.OPTIMIZERS)))
    print(f"Wall time {time.perf_counter() - start:.0f} s. Tables and figures in {out / 'report'}.")
  elif args.command == "report":
    print(report_lib.build(args.dirs, list(optimizers_lib.OPTIMIZERS), args.to))
  else:
    optimizer = optimizers_lib.OPTIMIZERS[args.optimizer]
    task = TASKS[args.task]
    print(vmap_speedup.measure(task, optimizer.build(optimizer.quick_lr[task.regime]),
                               args.seeds, args.mode))


if __name__ == "__main__":
  main()
