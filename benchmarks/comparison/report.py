"""Tables and figures from saved runs: both tracks' scores (eqs. 19-22), budgets, wall times.

``build([out])`` reads ``out/raw`` and ``out/tasks`` (see :mod:`benchmarks.comparison.runner`)
and writes ``out/report/``; ``build([a, b, ...], report_dir)`` reports several run directories
of one mode and seeds together: the image tasks and the other six, or the shards of one
request (a configuration saved in two of them must be the same). It writes ``scores.md``
(every table, the runs' commands and every task's cuts), ``scores.csv``, ``min_errors.csv``,
``task_scores.png`` (like the paper's Figure 1), ``overall_scores.png`` (Figure 2, both tracks)
and ``convergence_<task>.png`` (Figure 5).

Two tracks (see :mod:`benchmarks.comparison.optimizers`): *defaults-only*, each optimizer at
its documented default setting, and *tuned*, at its best setting of grid and default by the
lowest mean minimum test error. Both are scored against the same reference, the best tuned
mean minimum error of the task (in quick mode, where only defaults run, the best default),
so an optimizer's tuning gap, tuned minus defaults-only A, is never negative.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import pathlib
from typing import Literal, Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import run_directory  # noqa: E402
from benchmarks.comparison import optimizers as optimizers_lib  # noqa: E402
from benchmarks.comparison import scoring  # noqa: E402

N_CONVERGENCE_CURVES = 8
N_LEADING = 3  # optimizers whose budget diagnostic is shown next to the scores.
Track = Literal["defaults", "tuned"]
TRACKS: tuple[Track, ...] = ("defaults", "tuned")
REGIMES = ("mini-batch", "intermediate", "full-batch")


@dataclasses.dataclass(frozen=True)
class Outcome:
  """An optimizer on a task at one setting."""

  learning_rate: float
  minima: np.ndarray  # [n_seeds] minimum test errors, failed seeds replaced.
  errors: np.ndarray  # [n_seeds, n_evals] raw test errors.
  extras: dict[str, np.ndarray]  # per extra, its value at each seed's best evaluation.
  n_failed: int
  best_is_last: np.ndarray  # [n_seeds] whether the seed's first minimum is its last evaluation.
  wall_s: float
  compile_s: float  # NaN for runs saved before compilation was timed.


@dataclasses.dataclass(frozen=True)
class TaskReport:
  """One task: metadata, every optimizer's outcome per track, and both tracks' scores.

  Attributes:
    meta: the task's ``tasks/<task>.json``.
    outcomes: ``{track: {optimizer: outcome}}``; an optimizer whose default is not saved is
      missing from the defaults track.
    scores: ``{track: {optimizer: (A, dA)}}`` against the best tuned mean minimum error.
    finished: the optimizers that ran every setting this mode asks for.
    wall_s: ``{optimizer: (median wall time, median wall time less compilation)}`` over its
      settings, in seconds.
  """

  meta: dict
  outcomes: dict[Track, dict[str, Outcome]]
  scores: dict[Track, dict[str, tuple[float, float]]]
  finished: set[str]
  wall_s: dict[str, tuple[float, float]]


def _outcome(saved: Mapping[str, np.ndarray], failure_error: float) -> Outcome:
  errors = saved["errors"]
  minima = scoring.seed_minima(errors, failure_error)
  finite = np.where(np.isfinite(errors), errors, np.inf)
  # The last evaluation at each seed's minimum: an unsolved RL seed's error stays at the cap,
  # and its extras (running reward) are then those at the end of training, not the start.
  at_min = errors.shape[1] - 1 - finite[:, ::-1].argmin(axis=1)
  extras = {key[len("extra_"):]: value[np.arange(len(at_min)), at_min]
            for key, value in saved.items() if key.startswith("extra_")}
  failed = ~np.isfinite(errors).all(axis=1) | (errors.min(axis=1) > failure_error)
  best_is_last = (finite.argmin(axis=1) == errors.shape[1] - 1) & ~failed
  return Outcome(float(saved["learning_rate"]), minima, errors, extras, int(failed.sum()),
                 best_is_last, float(saved["wall_s"]),
                 float(saved["compile_s"]) if "compile_s" in saved else float("nan"))


def _task_report(meta: dict, raw: dict[str, dict[float, dict[str, np.ndarray]]],
                 mode: str) -> TaskReport:
  """Picks every optimizer's tuned setting and its default, and scores both tracks."""
  failure_error = meta["failure_error"]
  if failure_error is None:
    finite = [e[np.isfinite(e)] for runs in raw.values() for r in runs.values()
              for e in [r["errors"]]]
    finite = np.concatenate(finite) if finite else np.array([])
    failure_error = float(finite.max()) if finite.size else float("inf")
  outcomes: dict[Track, dict[str, Outcome]] = {"defaults": {}, "tuned": {}}
  finished, wall_s = set(), {}
  for name, runs in raw.items():
    if name not in optimizers_lib.OPTIMIZERS:
      raise ValueError(f"{meta['name']}/{name}: saved results of an optimizer the registry "
                       "does not have.")
    optimizer = optimizers_lib.OPTIMIZERS[name]
    by_setting = {lr: _outcome(r, failure_error) for lr, r in runs.items()}
    best = min(by_setting, key=lambda k: (by_setting[k].minima.mean(), k))
    outcomes["tuned"][name] = by_setting[best]
    default = optimizer.default[meta["regime"]]
    if default in by_setting:
      outcomes["defaults"][name] = by_setting[default]
    if set(optimizer.settings(meta["regime"], tuned=mode != "quick")) <= set(by_setting):
      finished.add(name)
    wall_s[name] = (float(np.median([o.wall_s for o in by_setting.values()])),
                    float(np.median([o.wall_s - o.compile_s for o in by_setting.values()])))
  reference = min(o.minima.mean() for o in outcomes["tuned"].values())
  scores = {track: scoring.accuracy_scores({k: o.minima.mean() for k, o in chosen.items()},
                                           {k: o.minima.std() for k, o in chosen.items()},
                                           best=reference)
            for track, chosen in outcomes.items()}
  return TaskReport(meta, outcomes, scores, finished, wall_s)


def _load_raw(directory: pathlib.Path, into: dict[str, dict[float, dict[str, np.ndarray]]],
              sources: dict[pathlib.Path, pathlib.Path]) -> None:
  """Adds one directory's configurations of a task to ``into`` (``{optimizer: {lr: arrays}}``).

  Raises:
    ValueError: when a configuration is already there from another directory with other
      results.
  """
  for path in run_directory.saved_files(directory, "*/lr=*.npz"):
    arrays = run_directory.load(path)
    runs = into.setdefault(path.parent.name, {})
    lr = float(arrays["learning_rate"])
    key = path.relative_to(directory.parent.parent)
    if lr in runs:
      same = runs[lr].keys() == arrays.keys() and all(
          np.array_equal(runs[lr][k], arrays[k], equal_nan=arrays[k].dtype.kind == "f")
          for k in arrays if k not in ("wall_s", "compile_s"))
      if not same:
        raise ValueError(f"{key} differs between {sources[key]} and {directory.parent.parent}.")
      continue
    runs[lr] = arrays
    sources[key] = directory.parent.parent


def load(*dirs: pathlib.Path) -> tuple[dict, dict[str, TaskReport]]:
  """Reads run directories of one mode and seeds: their ``run.json`` and a report per task.

  Directories may hold different tasks, or different configurations of the same tasks (shards,
  or a run extended later); a task's configurations are merged over all of them.
  """
  runs = [json.loads((out / "run.json").read_text()) for out in dirs]
  if len({(r["mode"], tuple(r["seeds"])) for r in runs}) > 1:
    raise ValueError("Runs reported together need the same mode and seeds, got "
                     + ", ".join(f"{r['mode']} {r['seeds']}" for r in runs))
  run = {**runs[0], "tasks": list(dict.fromkeys(t for r in runs for t in r["tasks"])),
         "commands": list(dict.fromkeys(c for r in runs for c in r["commands"]))}
  metas, raws = {}, {}
  sources: dict[pathlib.Path, pathlib.Path] = {}
  for out, r in zip(dirs, runs):
    for name in r["tasks"]:
      meta_file = out / "tasks" / f"{name}.json"
      if meta_file.exists():
        metas.setdefault(name, json.loads(meta_file.read_text()))
        _load_raw(out / "raw" / name, raws.setdefault(name, {}), sources)
  reports = {name: _task_report(metas[name], raws[name], run["mode"])
             for name in run["tasks"] if raws.get(name)}
  return run, reports


@dataclasses.dataclass(frozen=True)
class Overall:
  """Scores over tasks: A-bar per track, per regime, over the tasks every optimizer finished."""

  complete: list[str]
  a_bar: dict[Track, dict[str, tuple[float, float]]]
  by_regime: dict[Track, dict[str, dict[str, tuple[float, float]]]]  # track -> regime -> name


def overall(reports: dict[str, TaskReport], present: set[str]) -> Overall:
  """A-bar (eqs. 21-22) of both tracks over the tasks every optimizer finished, and by regime."""
  complete = [t for t, r in reports.items() if r.finished == present]

  def over(tasks: list[str], track: Track) -> dict[str, tuple[float, float]]:
    return scoring.overall_scores({t: reports[t].scores[track] for t in tasks}) if tasks else {}

  return Overall(
      complete,
      {track: over(complete, track) for track in TRACKS},
      {track: {regime: over([t for t in complete if reports[t].meta["regime"] == regime], track)
               for regime in REGIMES} for track in TRACKS})


def _percent(score: tuple[float, float]) -> str:
  return f"{100 * score[0]:.1f} ± {100 * score[1]:.1f}"


def _row(cells: list[str]) -> str:
  return "| " + " | ".join(cells) + " |"


def _header(first: str, columns: list[str]) -> list[str]:
  return [_row([first, *columns]), "|---" * (len(columns) + 1) + "|"]


def _score_table(track: Track, reports: dict[str, TaskReport], order: list[str],
                 result: Overall) -> list[str]:
  tasks = list(reports)
  a_bar = result.a_bar[track]
  lines = _header("optimizer", [*tasks, "A-bar"])
  for name in sorted(order, key=lambda n: -a_bar.get(n, (-1.0, 0.0))[0]):
    cells = [_percent(reports[t].scores[track][name])
             + ("" if name in reports[t].finished else "*")
             if name in reports[t].scores[track] else "—" for t in tasks]
    lines.append(_row([name, *cells, _percent(a_bar[name]) if name in a_bar else "—"]))
  lines.append(_row([f"best evaluation last, {N_LEADING} leading (%)",
                     *(_still_improving(reports[t], track, N_LEADING) for t in tasks), ""]))
  return lines


def _still_improving(report: TaskReport, track: Track, n: int | None = None) -> str:
  """Percentage of (optimizer, seed) runs whose first minimum is the last evaluation."""
  scores = report.scores[track]
  names = sorted(scores, key=lambda k: -scores[k][0])[:n]
  if not names:
    return "—"
  last = np.concatenate([report.outcomes[track][k].best_is_last for k in names])
  return f"{100 * last.mean():.0f}"


def markdown(run: dict, reports: dict[str, TaskReport], order: list[str],
             result: Overall) -> str:
  """The report's Markdown: both tracks' scores, the gap, errors, settings, budgets, times."""
  tasks = list(reports)
  tuned_mode = run["mode"] != "quick"
  complete = ", ".join(result.complete) or "none"
  lines = [
      f"Mode `{run['mode']}`, {len(run['seeds'])} seeds per configuration. Commands: "
      + "; ".join(f"`{c}`" for c in run["commands"]) + ".", "",
      "Accuracy score A_i (eqs. 19-20, %) per task and mean A-bar (eqs. 21-22, %) over the tasks "
      f"every optimizer finished ({complete}). 100 = the best "
      + ("tuned optimizer on the task, for both tracks; * = settings not all run (see the "
         "settings table)." if tuned_mode else "optimizer on the task."),
      "The last row: of the (optimizer, seed) runs of the "
      f"{N_LEADING} leading optimizers, the percentage whose best evaluation is the last one "
      "(still improving when the budget ended).", "",
      "### Defaults-only: every optimizer at its documented default setting", "",
      *_score_table("defaults", reports, order, result),
  ]
  if tuned_mode:
    lines += ["", "### Tuned: every optimizer at its best setting of grid and default", "",
              *_score_table("tuned", reports, order, result),
              "", "### Tuning gap", "",
              "A-bar of both tracks and the gap (tuned minus defaults-only, points), overall and "
              f"per batch regime over the complete tasks ({complete}):", ""]
    regimes = [r for r in REGIMES if result.by_regime["tuned"][r]]
    lines += _header("optimizer", ["defaults-only", "tuned", "gap",
                                   *(f"defaults / tuned, {r}" for r in regimes)])
    a_bar = result.a_bar
    for name in sorted(order, key=lambda n: -a_bar["defaults"].get(n, (-1.0, 0.0))[0]):
      if name not in a_bar["tuned"]:
        continue
      d, t = a_bar["defaults"][name][0], a_bar["tuned"][name][0]
      lines.append(_row([name, _percent(a_bar["defaults"][name]), _percent(a_bar["tuned"][name]),
                         f"{100 * (t - d):.1f}",
                         *(f"{100 * result.by_regime['defaults'][r][name][0]:.1f} / "
                           f"{100 * result.by_regime['tuned'][r][name][0]:.1f}" for r in regimes)]))
  else:
    regimes = [r for r in REGIMES if result.by_regime["defaults"][r]]
    lines += ["", f"A-bar per batch regime over the complete tasks ({complete}):", "",
              *_header("optimizer", regimes)]
    for name in sorted(order, key=lambda n: -result.a_bar["defaults"].get(n, (-1.0, 0.0))[0]):
      if name in result.a_bar["defaults"]:
        lines.append(_row([name, *(_percent(result.by_regime["defaults"][r][name])
                                   for r in regimes)]))
  main: Track = "tuned" if tuned_mode else "defaults"
  lines += ["", "Minimum test error per seed, mean ± std over seeds, at the "
            + ("tuned" if tuned_mode else "default") + " setting (failed seeds, with a non-finite "
            "error or none below the task's failure error, count as the failure error; their "
            "number is in brackets):", "", *_header("optimizer", tasks)]
  for name in order:
    cells = []
    for t in tasks:
      o = reports[t].outcomes[main].get(name)
      cells.append("—" if o is None else f"{o.minima.mean():.4g} ± {o.minima.std():.2g}"
                   + (f" ({o.n_failed} failed)" if o.n_failed else ""))
    lines.append(_row([name, *cells]))
  lines += ["", "Setting (learning rate; s_max for RPROP and CoRe; multiplier for the tuning-free "
            "optimizers; the base Adam's rate in Mechanic-Adam): default"
            + (" / tuned" if tuned_mode else "")
            + ", and how many of the mode's settings ran where not all did:", "",
            *_header("optimizer", tasks)]
  for name in order:
    cells = []
    for t in tasks:
      report = reports[t]
      if name not in report.outcomes["tuned"]:
        cells.append("—")
        continue
      regime = report.meta["regime"]
      optimizer = optimizers_lib.OPTIMIZERS[name]
      cell = f"{optimizer.default[regime]:g}"
      if tuned_mode:
        cell += f" / {report.outcomes['tuned'][name].learning_rate:g}"
      if name not in report.finished:
        n_saved = len({o.learning_rate for track in TRACKS
                       for k, o in report.outcomes[track].items() if k == name})
        cell += f" ({n_saved}+ of {len(optimizer.settings(regime, tuned_mode))} ran)"
      cells.append(cell)
    lines.append(_row([name, *cells]))
  lines += ["", "Budget: the percentage of (optimizer, seed) runs whose best evaluation is the "
            f"last one, at the {main} setting, over all optimizers and over the {N_LEADING} "
            "leading ones (a high value means the score measures early training):", "",
            *_header("", tasks),
            _row(["all optimizers", *(_still_improving(reports[t], main) for t in tasks)]),
            _row([f"{N_LEADING} leading", *(_still_improving(reports[t], main, N_LEADING)
                                            for t in tasks)])]
  if all("Adam" in r.wall_s for r in reports.values()):
    lines += ["", "Wall time of a configuration relative to Adam's on the same task (median over "
              "the settings that ran; training and evaluation of all seeds), with compilation and "
              "in brackets without it (— where the run predates timing compilation). Measured on "
              "2 CPU cores shared with other jobs: a rough guide.", "",
              *_header("optimizer", tasks)]
    for name in order:
      cells = []
      for t in tasks:
        times = reports[t].wall_s
        if name not in times:
          cells.append("—")
          continue
        steps = times[name][1] / times["Adam"][1]
        cells.append(f"{times[name][0] / times['Adam'][0]:.2f} ("
                     + (f"{steps:.2f}" if np.isfinite(steps) else "—") + ")")
      lines.append(_row([name, *cells]))
  lines += ["", "Default settings and where they come from:", ""]
  for name in order:
    lines.append(f"- **{name}**: {optimizers_lib.OPTIMIZERS[name].default_source}.")
  lines += ["", "Tasks (error; extras at each seed's best evaluation are in min_errors.csv) "
            "and what this mode cuts relative to the paper's protocol:", ""]
  for t, report in reports.items():
    lines.append(f"- **{t}** ({report.meta['regime']}; {report.meta['error_name']}): "
                 f"{report.meta['cuts']}")
  return "\n".join(lines) + "\n"


def _write_csvs(report_dir: pathlib.Path, reports: dict[str, TaskReport],
                result: Overall) -> None:
  with open(report_dir / "scores.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["track", "task", "optimizer", "A", "dA"])
    for track in TRACKS:
      for t, report in reports.items():
        for name, (a, da) in report.scores[track].items():
          writer.writerow([track, t, name, f"{a:.6g}", f"{da:.6g}"])
      for name, (a, da) in result.a_bar[track].items():
        writer.writerow([track, "A-bar", name, f"{a:.6g}", f"{da:.6g}"])
  with open(report_dir / "min_errors.csv", "w", newline="") as f:
    writer = csv.writer(f)
    extra_names = sorted({e for r in reports.values() for o in r.outcomes["tuned"].values()
                          for e in o.extras})
    writer.writerow(["track", "task", "optimizer", "learning_rate", "mean_min_error",
                     "std_min_error", "n_failed", "best_is_last", "wall_s", "compile_s"]
                    + [f"mean_{e}" for e in extra_names])
    for track in TRACKS:
      for t, report in reports.items():
        for name, o in report.outcomes[track].items():
          writer.writerow([track, t, name, f"{o.learning_rate:g}", f"{o.minima.mean():.6g}",
                           f"{o.minima.std():.6g}", o.n_failed, int(o.best_is_last.sum()),
                           f"{o.wall_s:.3g}", f"{o.compile_s:.3g}"]
                          + [f"{o.extras[e].mean():.6g}" if e in o.extras else ""
                             for e in extra_names])


def _colours(order: list[str]) -> dict[str, tuple]:
  cmap = plt.get_cmap("tab20")
  return {name: cmap(i % 20) for i, name in enumerate(order)}


def _hatched_bar(ax, x, value, error, width, colour, horizontal=False, alpha=1.0):
  """A bar with its uncertainty as a cross-hatched band around its edge (paper's style)."""
  if horizontal:
    ax.barh(x, value, height=width, color=colour, edgecolor="none", alpha=alpha)
    ax.barh(x, 2 * error, left=value - error, height=width, color="none", edgecolor="black",
            hatch="xxx", linewidth=0)
  else:
    ax.bar(x, value, width=width, color=colour, edgecolor="none", alpha=alpha)
    ax.bar(x, 2 * error, bottom=value - error, width=width, color="none", edgecolor="black",
           hatch="xxx", linewidth=0)


def _plot_task_scores(path, reports, order, colours, track: Track):
  fig, ax = plt.subplots(figsize=(2.5 + 1.6 * len(reports), 4.5))
  width = 0.8 / len(order)
  for i, name in enumerate(order):
    for j, report in enumerate(reports.values()):
      if name in report.scores[track]:
        a, da = report.scores[track][name]
        _hatched_bar(ax, j + (i - (len(order) - 1) / 2) * width, 100 * a, 100 * da, width,
                     colours[name])
  ax.set_xticks(range(len(reports)), list(reports))
  ax.set_ylabel(f"accuracy score $A_i$ (%), {track}")
  ax.set_ylim(0, 105)
  ax.legend(handles=[matplotlib.patches.Patch(color=colours[n], label=n) for n in order],
            fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _plot_overall(path, result: Overall, colours, tracks: tuple[Track, ...]):
  """Horizontal bars of A-bar; with both tracks, tuned solid and defaults-only pale below it."""
  main = tracks[-1]
  ranked = sorted(result.a_bar[main], key=lambda n: result.a_bar[main][n][0])
  fig, ax = plt.subplots(figsize=(6, 0.45 * len(ranked) + 1.2))
  height = 0.8 / len(tracks)
  for i, name in enumerate(ranked):
    for j, track in enumerate(tracks):
      a, da = result.a_bar[track][name]
      _hatched_bar(ax, i + (j - (len(tracks) - 1) / 2) * height, 100 * a, 100 * da, height,
                   colours[name], horizontal=True, alpha=1.0 if track == main else 0.4)
  ax.set_yticks(range(len(ranked)), ranked)
  over = ", ".join(result.complete) if len(result.complete) <= 4 else \
      f"{len(result.complete)} tasks"
  what = "tuned (solid) and defaults-only (pale)" if len(tracks) == 2 else tracks[0]
  ax.set_xlabel(r"mean accuracy score $\bar{A}$ (%) over " + over + f"\n{what}")
  ax.set_xlim(0, 105)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _plot_convergence(path, task, report, colours, track: Track):
  scores = report.scores[track]
  best = sorted(scores, key=lambda n: -scores[n][0])[:N_CONVERGENCE_CURVES]
  fig, ax = plt.subplots(figsize=(6, 4))
  for name in best:
    errors = report.outcomes[track][name].errors
    mean, std = np.nanmean(errors, axis=0), np.nanstd(errors, axis=0)
    steps = np.arange(1, len(mean) + 1)
    ax.plot(steps, mean, color=colours[name], label=name)
    ax.fill_between(steps, mean - std, mean + std, color=colours[name], alpha=0.2, linewidth=0)
  ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
  ax.set_xlabel("evaluation (epoch)")
  ax.set_ylabel(report.meta["error_name"])
  ax.set_title(f"{task}: the {len(best)} best optimizers ({track}), mean ± std over seeds")
  ax.legend(fontsize="small")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def build(dirs: list[pathlib.Path], report_dir: pathlib.Path | None = None) -> str:
  """Writes the report of one or more run directories and returns its Markdown tables.

  Args:
    dirs: run directories (of one mode and seeds).
    report_dir: where to write; ``dirs[0] / "report"`` by default for one directory.

  Returns:
    The content of ``scores.md``.
  """
  if report_dir is None:
    if len(dirs) != 1:
      raise ValueError("A report of several runs needs a report_dir.")
    report_dir = dirs[0] / "report"
  run, reports = load(*dirs)
  present = {name for report in reports.values() for name in report.outcomes["tuned"]}
  order = [n for n in optimizers_lib.OPTIMIZERS if n in present]
  result = overall(reports, present)
  tracks: tuple[Track, ...] = TRACKS if run["mode"] != "quick" else ("defaults",)
  report_dir.mkdir(parents=True, exist_ok=True)
  text = markdown(run, reports, order, result)
  (report_dir / "scores.md").write_text(text)
  _write_csvs(report_dir, reports, result)
  colours = _colours(order)
  if reports:
    _plot_task_scores(report_dir / "task_scores.png", reports, order, colours, tracks[-1])
  if result.complete:
    _plot_overall(report_dir / "overall_scores.png", result, colours, tracks)
  for task, report in reports.items():
    _plot_convergence(report_dir / f"convergence_{task}.png", task, report, colours, tracks[-1])
  return text
