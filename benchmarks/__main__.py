"""Command line: ``python -m benchmarks <verb> ...``, one verb per job.

The accuracy comparison (benchmarks/comparison):
  python -m benchmarks run [--track paper|modern] [--quick|--standard|--full] [--tasks ...]
                           [--optimizers ...]
                           [--seeds N] [--out DIR] [--list] [--shard I/N]
                           [--ray ADDRESS [--cpus-per-task C] [--gpus-per-task G]]
  python -m benchmarks report DIR [DIR ...] [--to REPORT_DIR]

Continual learning, does CoRe's freezing help? (benchmarks/continual):
  python -m benchmarks continual [--quick|--standard|--full] [--seeds N] [--out DIR]
  (`report DIR` rebuilds its report too)
  python -m benchmarks continual-floor [--mode standard] [--epochs 2000] [--seeds 3]
      [--lr 1e-2] [--optimizers adam core]

The studies (benchmarks/studies, one module each):
  python -m benchmarks step-speed [--quick] [--out FILE] [--torch-device cpu|cuda]
  python -m benchmarks sharded-step
  python -m benchmarks accelerator-cost [--platform cpu|tpu] [--sizes N ...] [--passes P ...]
  python -m benchmarks state-dtype-accuracy
  python -m benchmarks selection-passes [--steps 600]
  python -m benchmarks model-trees [--reps 30] [--out FILE]
  python -m benchmarks vmap-selection
  python -m benchmarks vmap-speedup [--task AEF] [--optimizer CoRe] [--seeds 5] [--mode quick]
  python -m benchmarks tie-band [--steps 3000]

run, report and vmap-speedup reuse compiled programs from benchmarks/runs/jax_cache; the
other studies compile afresh (step-speed times compilation). `python -m benchmarks VERB -h`
lists a verb's options.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pathlib
import sys
import time

import jax

from benchmarks.comparison import cluster
from benchmarks.comparison import optimizers as optimizers_lib
from benchmarks.comparison import report as report_lib
from benchmarks.comparison import runner
from benchmarks.comparison.modern import optimizers as modern_optimizers
from benchmarks.comparison.tasks import TASKS
from benchmarks.comparison.tasks import TRACKS

RUNS = pathlib.Path(__file__).parent / "runs"

STUDIES = {
    "step-speed": ("step_speed", "step time and state memory against Adam, JAX and torch"),
    "sharded-step": ("sharded_step", "collectives and memory of a step on 8 virtual devices"),
    "accelerator-cost": ("accelerator_cost", "bytes accessed per step on a TPU v5e 2x4 slice, "
                         "every selection pass counted"),
    "state-dtype-accuracy": ("state_dtype_accuracy", "accuracy cost of bfloat16 state"),
    "selection-passes": ("selection_passes", "reads of the scores per update by freezing's search"),
    "model-trees": ("model_trees", "compile and step time of freezing on a GPT-style tree and on "
                    "300 and 600 leaves"),
    "vmap-selection": ("vmap_selection", "what freezing costs under vmap"),
    "vmap-speedup": ("vmap_speedup", "time vmapped seeds of a task against a Python loop"),
    "tie-band": ("tie_band", "weights the tie band of eq. 5 freezes beyond floor(p n)"),
}
"""Verb: (module in :mod:`benchmarks.studies`, help). A study's module has
``add_arguments(parser)`` and ``main(args)``."""

CACHED = ("run", "report", "vmap-speedup", "continual")
"""Verbs that reuse compiled programs across runs (see :func:`_enable_compilation_cache`)."""


def _enable_compilation_cache() -> None:
  """Reuses compiled programs across runs (and across tasks whose programs coincide)."""
  jax.config.update("jax_compilation_cache_dir", str(RUNS / "jax_cache"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def _study(verb: str):
  return importlib.import_module(f"benchmarks.studies.{STUDIES[verb][0]}")


def _parser(verb: str | None = None) -> argparse.ArgumentParser:
  """The CLI; only the study named by ``verb`` is imported (each brings its own dependencies)."""
  parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  commands = parser.add_subparsers(dest="command", required=True, metavar="VERB")

  run = commands.add_parser("run", help="train and score the comparison; resumes an "
                            "interrupted run")
  modes = run.add_mutually_exclusive_group()
  for mode, text in (("quick", "every optimizer at its documented default, tiny data "
                      "(default)"),
                     ("standard", "defaults and the tuning grid, cut data and epochs"),
                     ("full", "the paper's protocol (days on one machine: see --list, "
                      "--shard, --ray)")):
    modes.add_argument(f"--{mode}", dest="mode", action="store_const", const=mode, help=text)
  run.add_argument("--track", choices=list(TRACKS), default="paper",
                   help="paper: the paper's tasks and optimizers, scored by accuracy (default); "
                   "modern: transformers and today's optimizers, scored by time to target")
  run.add_argument("--tasks", nargs="+", choices=list(TASKS), help="default: the track's")
  run.add_argument("--optimizers", nargs="+",
                   choices=[*optimizers_lib.OPTIMIZERS, *modern_optimizers.OPTIMIZERS],
                   help="default: the track's")
  run.add_argument("--seeds", type=int, help="seeds per configuration (quick 3, standard 5, "
                   "full 20)")
  run.add_argument("--out", type=pathlib.Path, help="output directory (default "
                   "benchmarks/runs/<mode>)")
  cluster.add_arguments(run)

  continual = commands.add_parser("continual", help="does CoRe's freezing help? continual-"
                                  "learning scenarios; resumes an interrupted run")
  continual_modes = continual.add_mutually_exclusive_group()
  for mode, text in (("quick", "tiny data, quick_lr, a subset of optimizers (default)"),
                     ("standard", "step-size grid, 10 seeds, cut data (~90 min on 2 cores)"),
                     ("full", "20 seeds, the paper's sizes")):
    continual_modes.add_argument(f"--{mode}", dest="mode", action="store_const", const=mode,
                                 help=text)
  continual.add_argument("--seeds", type=int, help="seeds per configuration (quick 3, "
                         "standard 10, full 20)")
  continual.add_argument("--out", type=pathlib.Path, help="output directory (default "
                         "benchmarks/runs/continual_<mode>)")

  floor = commands.add_parser("continual-floor", help="what the stationary scenario's potential "
                              "reaches trained much longer, with a decaying step size",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  if verb == "continual-floor":
    from benchmarks.continual import floor as floor_lib
    floor.description = floor_lib.__doc__
    floor_lib.add_arguments(floor)

  report = commands.add_parser("report", help="rebuild tables and figures of run directories")
  report.add_argument("dirs", type=pathlib.Path, nargs="+", help="run directories of one mode "
                      "and seeds, reported together (shards of one run merge)")
  report.add_argument("--to", type=pathlib.Path, help="report directory (default DIR/report; "
                      "required for several runs)")

  for name, (_, text) in STUDIES.items():
    study = commands.add_parser(name, help=text,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    if name == verb:
      module = _study(name)
      study.description = module.__doc__
      module.add_arguments(study)
  return parser


def _is_continual(dirs: list[pathlib.Path]) -> bool:
  """Whether ``dirs`` is one run of ``continual`` (its run.json says so)."""
  from benchmarks.continual import runner as continual_runner
  kinds = [json.loads((d / "run.json").read_text()).get("kind") if (d / "run.json").exists()
           else None for d in dirs]
  if continual_runner.KIND in kinds and len(dirs) > 1:
    raise SystemExit("report takes one continual run directory at a time.")
  return kinds == [continual_runner.KIND]


def _continual(args: argparse.Namespace) -> None:
  from benchmarks.continual import runner as continual_runner
  from benchmarks.continual.scenarios import SCENARIOS
  mode = args.mode or "quick"
  out = args.out or RUNS / f"continual_{mode}"
  start = time.perf_counter()
  continual_runner.run(out, list(SCENARIOS.values()), mode,
                       args.seeds or continual_runner.DEFAULT_SEEDS[mode])
  from benchmarks.continual import report as continual_report  # matplotlib
  print(continual_report.build(out))
  print(f"Wall time {time.perf_counter() - start:.0f} s. Tables and figures in {out / 'report'}.")


def _report(dirs: list[pathlib.Path], to: pathlib.Path | None = None) -> str:
  """Reports runs of the comparison: the modern track's scoring for runs of its optimizers."""
  names = set()
  for d in dirs:
    names.update(json.loads((d / "run.json").read_text())["optimizers"])
  if names and names <= set(modern_optimizers.OPTIMIZERS):
    from benchmarks.comparison.modern import report as modern_report  # matplotlib
    return modern_report.build(dirs, to)
  return report_lib.build(dirs, to)


def main(argv: list[str] | None = None) -> None:
  argv = sys.argv[1:] if argv is None else argv
  args = _parser(argv[0] if argv else None).parse_args(argv)
  if args.command in CACHED:
    _enable_compilation_cache()
  if args.command == "run":
    mode = args.mode or "quick"
    registry = (modern_optimizers if args.track == "modern" else optimizers_lib).OPTIMIZERS
    tasks = [TASKS[t] for t in args.tasks or TRACKS[args.track]]
    optimizers = [{**optimizers_lib.OPTIMIZERS, **modern_optimizers.OPTIMIZERS}[o]
                  for o in args.optimizers or registry]
    if args.list:
      print("\n".join(c.id for c in runner.shard(runner.plan(tasks, optimizers, mode),
                                                 *args.shard)))
      return
    out = args.out or RUNS / (mode if args.track == "paper" else f"{args.track}_{mode}")
    start = time.perf_counter()
    runner.run(out, tasks, optimizers, mode, args.seeds or runner.DEFAULT_SEEDS[mode],
               shard_of=args.shard, execute=cluster.executor(args))
    print(_report([out]))
    print(f"Wall time {time.perf_counter() - start:.0f} s. Tables and figures in {out / 'report'}.")
  elif args.command == "continual":
    _continual(args)
  elif args.command == "continual-floor":
    from benchmarks.continual import floor as floor_lib
    floor_lib.main(args)
  elif args.command == "report" and _is_continual(args.dirs):
    from benchmarks.continual import report as continual_report
    print(continual_report.build(args.dirs[0], args.to))
  elif args.command == "report":
    print(_report(args.dirs, args.to))
  else:
    _study(args.command).main(args)


if __name__ == "__main__":
  main()
