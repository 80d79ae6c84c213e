"""The modern track's report: targets, time to target, performance profiles, A-bar.

``build([out])`` reads runs of the modern track's optimizers (the runner's ``run.json``,
``tasks/`` and ``raw/``; several directories of one mode and seeds merge, as shards do) and
writes to ``out/report/`` (or ``report_dir``):

- ``modern.md``: the targets, the time-to-target tables of both rulesets (steps and seconds),
  the profile scores next to the paper's A-bar of the same runs, the fraction of leading runs
  whose best evaluation is their last, compilation times, and each task's cuts;
- ``time_to_target.csv``: one row per run (task, optimizer, trial, seed);
- ``profiles.png``: performance profiles, both rulesets, in steps and in seconds;
- ``curves.png``: per task, each optimizer's best trial (median over seeds) against steps.

Steps of an evaluation: evaluations are evenly spaced over the task's ``n_steps`` (the last
after the last step). Seconds of an evaluation: the configuration's wall time less its
compilation time, over its number of evaluations (training and evaluation, all seeds of the
vmapped run: a per-run cost, equal shares per evaluation). Wall times on a shared machine are
noisy; steps are the primary clock here.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.comparison import scoring as paper_scoring  # noqa: E402
from benchmarks.comparison.modern import optimizers as optimizers_lib  # noqa: E402
from benchmarks.comparison.modern import scoring  # noqa: E402
from benchmarks.comparison.tasks import TASKS  # noqa: E402

N_LEADING = 3
RULESETS = ("self-tuning", "external tuning")
CLOCKS = ("steps", "seconds")


@dataclasses.dataclass(frozen=True)
class Run:
  """One configuration (an optimizer's trial on a task), all its seeds."""

  trial: int
  learning_rate: float
  warmup: float
  errors: np.ndarray  # [n_seeds, n_evals]
  steps_per_eval: float
  seconds_per_eval: float
  compile_s: float


@dataclasses.dataclass(frozen=True)
class TaskRuns:
  """A task's metadata, its runs ``{optimizer: {trial: Run}}`` and its target."""

  meta: dict
  runs: dict[str, dict[int, Run]]
  target: float


def _load(dirs: list[pathlib.Path]) -> tuple[dict, dict[str, TaskRuns]]:
  runs_json = [json.loads((d / "run.json").read_text()) for d in dirs]
  run = dict(runs_json[0])
  if any((r["mode"], r["seeds"]) != (run["mode"], run["seeds"]) for r in runs_json):
    raise ValueError("report the runs of one mode and one set of seeds together.")
  run["commands"] = list(dict.fromkeys(c for r in runs_json for c in r["commands"]))
  mode = run["mode"]
  tasks: dict[str, TaskRuns] = {}
  for d in dirs:
    for meta_file in sorted((d / "tasks").glob("*.json")):
      meta = json.loads(meta_file.read_text())
      name = meta["name"]
      found = tasks[name].runs if name in tasks else {}
      for optimizer in optimizers_lib.OPTIMIZERS.values():
        trials = optimizer.trials(meta["regime"])
        for path in sorted((d / "raw" / name / optimizer.name).glob("lr=*.npz")):
          if path.name.endswith(".partial.npz"):
            continue
          with np.load(path) as saved:
            rate = float(saved["learning_rate"])
            trial = [r for r, _ in trials].index(rate)
            errors = np.asarray(saved["errors"], dtype=np.float64)
            n_evals = errors.shape[1]
            compile_s = float(saved["compile_s"]) if "compile_s" in saved else float("nan")
            train_s = float(saved["wall_s"]) - (0.0 if np.isnan(compile_s) else compile_s)
          found.setdefault(optimizer.name, {})[trial] = Run(
              trial, rate, trials[trial][1], errors, TASKS[name].n_steps[mode] / n_evals,
              train_s / n_evals, compile_s)
      tasks[name] = TaskRuns(meta, found, np.nan)
  order = [t for t in run["tasks"] if t in tasks]
  result = {}
  for name in order:
    task = tasks[name]
    baselines = {o: [r.errors for r in task.runs[o].values()]
                 for o in optimizers_lib.BASELINES if o in task.runs}
    result[name] = dataclasses.replace(
        task, target=scoring.target(baselines) if baselines else np.nan)
  return run, result


def _times(task: TaskRuns, optimizer: str, clock: str) -> np.ndarray:
  """``[n_trials, n_seeds]`` time to target of every saved trial, in ``clock`` units."""
  rows = []
  for run in sorted(task.runs[optimizer].values(), key=lambda r: r.trial):
    evals = scoring.evaluations_to_target(run.errors, task.target)
    rows.append(evals * (run.steps_per_eval if clock == "steps" else run.seconds_per_eval))
  return np.array(rows)


def ruleset_times(tasks: dict[str, TaskRuns], optimizers: list[str], ruleset: str,
                  clock: str) -> dict[str, dict[str, float]]:
  """``{optimizer: {task: time}}`` under a ruleset, in steps or seconds."""
  out: dict[str, dict[str, float]] = {}
  for o in optimizers:
    out[o] = {}
    for name, task in tasks.items():
      times = _times(task, o, clock)
      out[o][name] = (scoring.self_tuning_time(times[0]) if ruleset == "self-tuning"
                      else scoring.external_tuning_time(times))
  return out


def _failure(task: TaskRuns) -> float:
  if task.meta.get("failure_error") is not None:
    return float(task.meta["failure_error"])
  finite = [e[np.isfinite(e)].max() for o in task.runs.values() for r in o.values()
            for e in [r.errors] if np.isfinite(e).any()]
  return float(max(finite))


def accuracy(tasks: dict[str, TaskRuns], optimizers: list[str]) -> dict[str, dict]:
  """The paper's A (eqs. 19-20) per task and A-bar (eqs. 21-22) of the same runs, both tracks:
  ``{"defaults": {...}, "tuned": {...}}`` each ``{"tasks": {task: {o: (A, dA)}}, "overall":
  {o: (A, dA)}}``, against the best tuned mean minimum error of the task."""
  per_track: dict[str, dict[str, dict[str, tuple[float, float]]]] = {"defaults": {}, "tuned": {}}
  for name, task in tasks.items():
    fail = _failure(task)
    stats = {o: {t: (paper_scoring.seed_minima(r.errors, fail).mean(),
                     paper_scoring.seed_minima(r.errors, fail).std())
                 for t, r in task.runs[o].items()} for o in optimizers}
    tuned = {o: min(s.values()) for o, s in stats.items()}
    best = min(mean for mean, _ in tuned.values())
    for track, chosen in (("defaults", {o: s[0] for o, s in stats.items()}), ("tuned", tuned)):
      per_track[track][name] = paper_scoring.accuracy_scores(
          {o: m for o, (m, _) in chosen.items()}, {o: sd for o, (_, sd) in chosen.items()}, best)
  return {track: {"tasks": scores, "overall": paper_scoring.overall_scores(scores)}
          for track, scores in per_track.items()}


def best_is_last(tasks: dict[str, TaskRuns], optimizers: list[str]) -> dict[str, tuple[int, int]]:
  """Per task, (runs whose best evaluation is the last, runs) over the leading optimizers'
  best trials: the :data:`N_LEADING` optimizers of the lowest mean minimum error."""
  out = {}
  for name, task in tasks.items():
    best_trial = {}
    for o in optimizers:
      means = {t: np.where(np.isfinite(r.errors), r.errors, np.inf).min(1).mean()
               for t, r in task.runs[o].items()}
      best_trial[o] = min(means, key=means.get), min(means.values())
    leading = sorted(optimizers, key=lambda o: best_trial[o][1])[:N_LEADING]
    flags = []
    for o in leading:
      errors = task.runs[o][best_trial[o][0]].errors
      finite = np.where(np.isfinite(errors), errors, np.inf)
      flags.extend(finite.argmin(axis=1) == errors.shape[1] - 1)
    out[name] = (int(np.sum(flags)), len(flags))
  return out


def _fmt_time(value: float, clock: str) -> str:
  if not np.isfinite(value):
    return "∞"
  return f"{value:.0f}" if clock == "steps" else f"{value:.1f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
  return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
          *("| " + " | ".join(r) + " |" for r in rows)]


def markdown(run: dict, tasks: dict[str, TaskRuns], optimizers: list[str]) -> str:
  names = list(tasks)
  lines = [f"# Modern track, {run['mode']} mode", "",
           f"{len(run['seeds'])} seeds (studies) per configuration. Commands: "
           + "; ".join(f"`{c}`" for c in run["commands"]) + ".", ""]
  missing = [(t, o) for t in names for o in optimizers if 0 not in tasks[t].runs.get(o, {})]
  n_trials = {(t, o): len(tasks[t].runs.get(o, {})) for t in names for o in optimizers}
  lines += [f"Trials per optimizer and task: {min(n_trials.values())} to "
            f"{max(n_trials.values())} (of {len(optimizers_lib.TRIALS)} in the search; quick "
            "mode runs only the defaults)." + (f" Missing defaults: {missing}." if missing
                                                 else ""), ""]
  lines += ["## Targets", "",
            "Per task, the best baseline's (AdamW-cos, NAdamW-cos) median over studies of its "
            "best trial's lowest validation error at the full budget.", ""]
  lines += _table(["task", "metric", "target", "steps (budget)", "evaluations"],
                  [[t, tasks[t].meta["error_name"], f"{tasks[t].target:.4g}",
                    f"{TASKS[t].n_steps[run['mode']]}",
                    f"{next(iter(tasks[t].runs.values()))[0].errors.shape[1]}"] for t in names])
  scores = {}
  for ruleset in RULESETS:
    for clock in CLOCKS:
      times = ruleset_times(tasks, optimizers, ruleset, clock)
      ratios = scoring.ratios(times)
      scores[ruleset, clock] = {o: scoring.profile_score(ratios[o]) for o in optimizers}
      lines += ["", f"## Time to target, {ruleset}, in {clock}", "",
                ("Median over studies of the defaults' run." if ruleset == "self-tuning" else
                 "Median over studies of each study's fastest trial.")
                + " ∞: not reached (median). In brackets: ratio to the fastest.", ""]
      lines += _table(["optimizer", *names, "profile score"],
                      [[o, *(f"{_fmt_time(times[o][t], clock)} ({ratios[o][t]:.2f})"
                             if np.isfinite(ratios[o][t]) else _fmt_time(times[o][t], clock)
                             for t in names), f"{scores[ruleset, clock][o]:.3f}"]
                       for o in optimizers])
  acc = accuracy(tasks, optimizers)
  lines += ["", "## Scores", "",
            f"Profile score: area under the performance profile from tau = 1 to "
            f"{scoring.TAU_MAX:g}, over {scoring.TAU_MAX - 1:g} (1 = fastest on every task). "
            "A-bar: the paper's accuracy score (eqs. 19-22, %) of the same runs, defaults "
            "(trial 0) and tuned (best trial by mean minimum error), against the best tuned "
            "error of each task.", ""]
  lines += _table(["optimizer", "self-tuning (steps)", "external (steps)",
                   "self-tuning (s)", "external (s)", "A-bar defaults", "A-bar tuned"],
                  [[o, *(f"{scores[k][o]:.3f}" for k in (("self-tuning", "steps"),
                                                         ("external tuning", "steps"),
                                                         ("self-tuning", "seconds"),
                                                         ("external tuning", "seconds"))),
                    *(f"{100 * acc[tr]['overall'][o][0]:.1f} ± {100 * acc[tr]['overall'][o][1]:.1f}"
                      for tr in ("defaults", "tuned"))] for o in optimizers])
  lines += ["", "Accuracy score A per task (tuned, %):", ""]
  lines += _table(["optimizer", *names],
                  [[o, *(f"{100 * acc['tuned']['tasks'][t][o][0]:.1f}" for t in names)]
                   for o in optimizers])
  last = best_is_last(tasks, optimizers)
  total = [sum(v[i] for v in last.values()) for i in (0, 1)]
  lines += ["", "## Budget", "",
            f"Runs whose best evaluation is their last, over the {N_LEADING} leading "
            "optimizers' best trials (lowest mean minimum error): "
            + ", ".join(f"{t} {k}/{n}" for t, (k, n) in last.items())
            + f"; all {total[0]}/{total[1]} ({100 * total[0] / max(total[1], 1):.0f}%).", ""]
  lines += ["Compilation (seconds, median over the optimizer's configurations; excluded from "
            "the times above):", ""]
  lines += _table(["optimizer", *names],
                  [[o, *(f"{np.nanmedian([r.compile_s for r in tasks[t].runs[o].values()]):.1f}"
                         for t in names)] for o in optimizers])
  if {"CoRe-const", "CoRe-SP-const"} <= set(optimizers):
    lines += ["", "## Freezing: CoRe-SP-const against CoRe-const", "",
              "Same trials; CoRe-SP freezes from update 250 on (score_history). Defaults (trial "
              "0) and best trial, mean over seeds of the final and of the lowest validation "
              "error, and the first evaluation where the two runs' errors differ.", ""]
    rows = []
    for t in names:
      core, sp = tasks[t].runs["CoRe-const"], tasks[t].runs["CoRe-SP-const"]
      for trial in sorted(set(core) & set(sp)):
        a, b = core[trial].errors, sp[trial].errors
        differ = np.flatnonzero(np.abs(a - b).max(axis=0) > 1e-6 * np.abs(a).max())
        first = (f"step {(differ[0] + 1) * core[trial].steps_per_eval:.0f}" if differ.size
                 else "never")
        rows.append([t, str(trial), f"{a[:, -1].mean():.4g}", f"{b[:, -1].mean():.4g}",
                     f"{np.nanmin(a, axis=1).mean():.4g}", f"{np.nanmin(b, axis=1).mean():.4g}",
                     first])
    lines += _table(["task", "trial", "CoRe final", "CoRe-SP final", "CoRe min", "CoRe-SP min",
                     "first difference"], rows)
  lines += ["", "## Optimizers", ""]
  lines += [f"- **{o}** ({optimizers_lib.OPTIMIZERS[o].schedule}): "
            f"{optimizers_lib.OPTIMIZERS[o].default_source}." for o in optimizers]
  lines += ["", f"Trials (learning-rate factor, warm-up fraction): {optimizers_lib.TRIALS}.", "",
            "## Tasks", ""]
  lines += [f"- **{t}** ({tasks[t].meta['regime']}; {tasks[t].meta['error_name']}): "
            f"{tasks[t].meta['cuts']}" for t in names]
  return "\n".join(lines) + "\n"


def _write_csv(path: pathlib.Path, tasks: dict[str, TaskRuns], seeds: list[int]) -> None:
  with path.open("w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["task", "optimizer", "trial", "learning_rate", "warmup", "seed", "target",
                     "steps_to_target", "seconds_to_target", "min_error", "best_is_last",
                     "compile_s"])
    for name, task in tasks.items():
      for o, trials in task.runs.items():
        for t, r in sorted(trials.items()):
          evals = scoring.evaluations_to_target(r.errors, task.target)
          finite = np.where(np.isfinite(r.errors), r.errors, np.inf)
          for i, seed in enumerate(seeds):
            writer.writerow([name, o, t, f"{r.learning_rate:g}", r.warmup, seed,
                             f"{task.target:.6g}", evals[i] * r.steps_per_eval,
                             f"{evals[i] * r.seconds_per_eval:.3f}", f"{finite[i].min():.6g}",
                             bool(finite[i].argmin() == r.errors.shape[1] - 1),
                             f"{r.compile_s:.2f}"])


def _plot_profiles(path: pathlib.Path, tasks: dict[str, TaskRuns], optimizers: list[str]) -> None:
  taus = np.linspace(1.0, scoring.TAU_MAX, 301)
  fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True, sharey=True)
  colours = plt.get_cmap("tab10")
  for i, ruleset in enumerate(RULESETS):
    for j, clock in enumerate(CLOCKS):
      ratios = scoring.ratios(ruleset_times(tasks, optimizers, ruleset, clock))
      ax = axes[i, j]
      for k, o in enumerate(optimizers):
        ax.step(taus, scoring.profile(ratios[o], taus), where="post", color=colours(k),
                linestyle="-" if "CoRe" not in o else "--",
                label=f"{o} ({scoring.profile_score(ratios[o]):.2f})")
      ax.set_title(f"{ruleset}, time in {clock}")
      ax.set_ylim(-0.02, 1.02)
      ax.grid(alpha=0.3)
      ax.legend(fontsize=7, loc="lower right")
  for ax in axes[1]:
    ax.set_xlabel("tau (time / fastest time on the task)")
  for ax in axes[:, 0]:
    ax.set_ylabel("fraction of tasks within tau")
  fig.suptitle(f"Performance profiles over {len(tasks)} tasks (legend: area score)")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _plot_curves(path: pathlib.Path, tasks: dict[str, TaskRuns], optimizers: list[str]) -> None:
  fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 4), squeeze=False)
  colours = plt.get_cmap("tab10")
  for ax, (name, task) in zip(axes[0], tasks.items()):
    for k, o in enumerate(optimizers):
      runs = task.runs[o]
      best = min(runs.values(), key=lambda r: np.nanmean(np.nanmin(r.errors, axis=1)))
      steps = best.steps_per_eval * np.arange(1, best.errors.shape[1] + 1)
      ax.plot(steps, np.median(best.errors, axis=0), color=colours(k),
              linestyle="-" if "CoRe" not in o else "--", label=o)
    ax.axhline(task.target, color="black", linewidth=0.8, linestyle=":")
    finite = np.concatenate([r.errors.ravel() for o in optimizers for r in task.runs[o].values()])
    finite = finite[np.isfinite(finite)]
    ax.set_ylim(finite.min() * 0.98, np.percentile(finite, 90))
    ax.set_title(f"{name} (best trial, median)")
    ax.set_xlabel("step")
    ax.set_ylabel(task.meta["error_name"])
  axes[0][0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def build(dirs: list[pathlib.Path], report_dir: pathlib.Path | None = None) -> str:
  """Writes the report of the runs in ``dirs`` and returns its markdown."""
  if report_dir is None:
    if len(dirs) > 1:
      raise ValueError("several run directories need a report directory (--to).")
    report_dir = dirs[0] / "report"
  run, tasks = _load(dirs)
  optimizers = [o for o in optimizers_lib.OPTIMIZERS if o in run["optimizers"]]
  complete = {name: t for name, t in tasks.items()
              if np.isfinite(t.target) and all(0 in t.runs.get(o, {}) for o in optimizers)}
  report_dir.mkdir(parents=True, exist_ok=True)
  if not complete:
    return f"No task has every optimizer's defaults saved yet in {dirs}."
  text = markdown(run, complete, optimizers)
  left_out = [name for name in tasks if name not in complete]
  if left_out:
    text += (f"\nLeft out, not every optimizer's defaults saved (the run did not finish "
             f"them): {', '.join(left_out)}.\n")
  tasks = complete
  (report_dir / "modern.md").write_text(text)
  _write_csv(report_dir / "time_to_target.csv", tasks, run["seeds"])
  _plot_profiles(report_dir / "profiles.png", tasks, optimizers)
  _plot_curves(report_dir / "curves.png", tasks, optimizers)
  return text
