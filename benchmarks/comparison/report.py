"""Tables and figures from a saved run: scores (eqs. 19-22), best learning rates, convergence.

``build([out])`` reads ``out/raw`` and ``out/tasks`` (see :mod:`benchmarks.comparison.runner`)
and writes ``out/report/``; ``build([a, b], ..., report_dir)`` reports the tasks of several runs
of one mode and seeds together (e.g. the image tasks and the other six). It writes:
``scores.md`` (all tables, the run's command and every task's cuts),
``scores.csv``, ``min_errors.csv``, ``task_scores.png`` (like the paper's Figure 1),
``overall_scores.png`` (Figure 2) and ``convergence_<task>.png`` (Figure 5).
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

from benchmarks.comparison import scoring  # noqa: E402

N_CONVERGENCE_CURVES = 8


@dataclasses.dataclass(frozen=True)
class Outcome:
  """An optimizer on a task at its best learning rate."""

  learning_rate: float
  minima: np.ndarray  # [n_seeds] minimum test errors, failed seeds replaced.
  errors: np.ndarray  # [n_seeds, n_evals] raw test errors.
  extras: dict[str, np.ndarray]  # per extra, its value at each seed's best evaluation.
  n_failed: int
  n_rates: int  # learning rates tried.


@dataclasses.dataclass(frozen=True)
class TaskReport:
  """One task's metadata, the best outcome per optimizer and the accuracy scores."""

  meta: dict
  outcomes: dict[str, Outcome]
  scores: dict[str, tuple[float, float]]


def _load_raw(directory: pathlib.Path) -> dict[str, dict[float, dict[str, np.ndarray]]]:
  """``{optimizer: {learning rate: saved arrays}}`` of one task."""
  raw: dict[str, dict[float, dict[str, np.ndarray]]] = {}
  for path in sorted(directory.glob("*/lr=*.npz")):
    if path.name.endswith(".partial.npz"):
      continue
    with np.load(path) as saved:
      arrays = dict(saved)
    raw.setdefault(path.parent.name, {})[float(arrays["learning_rate"])] = arrays
  return raw


def _task_report(meta: dict, raw: dict[str, dict[float, dict[str, np.ndarray]]]) -> TaskReport:
  """Picks every optimizer's learning rate by the lowest mean minimum error and scores it."""
  failure_error = meta["failure_error"]
  if failure_error is None:
    finite = [e[np.isfinite(e)] for runs in raw.values() for r in runs.values()
              for e in [r["errors"]]]
    finite = np.concatenate(finite) if finite else np.array([])
    failure_error = float(finite.max()) if finite.size else float("inf")
  outcomes = {}
  for name, runs in raw.items():
    candidates = {lr: scoring.seed_minima(r["errors"], failure_error) for lr, r in runs.items()}
    lr = min(candidates, key=lambda k: (candidates[k].mean(), k))
    errors = runs[lr]["errors"]
    # The last evaluation at each seed's minimum: an unsolved RL seed's error stays at the cap,
    # and its extras (running reward) are then those at the end of training, not the start.
    best = errors.shape[1] - 1 - np.where(np.isfinite(errors), errors, np.inf)[:, ::-1].argmin(axis=1)
    extras = {key[len("extra_"):]: value[np.arange(len(best)), best]
              for key, value in runs[lr].items() if key.startswith("extra_")}
    failed = ~np.isfinite(errors).all(axis=1) | (errors.min(axis=1) > failure_error)
    outcomes[name] = Outcome(lr, candidates[lr], errors, extras, int(failed.sum()), len(runs))
  scores = scoring.accuracy_scores({k: o.minima.mean() for k, o in outcomes.items()},
                                   {k: o.minima.std() for k, o in outcomes.items()})
  return TaskReport(meta=meta, outcomes=outcomes, scores=scores)


def load(*dirs: pathlib.Path) -> tuple[dict, dict[str, TaskReport]]:
  """Reads run directories of one mode and seeds: their ``run.json`` and a report per task."""
  runs = [json.loads((out / "run.json").read_text()) for out in dirs]
  if len({(r["mode"], tuple(r["seeds"])) for r in runs}) > 1:
    raise ValueError("Runs reported together need the same mode and seeds, got "
                     + ", ".join(f"{r['mode']} {r['seeds']}" for r in runs))
  run = {**runs[0], "tasks": [t for r in runs for t in r["tasks"]],
         "commands": [c for r in runs for c in r["commands"]]}
  reports = {}
  for out, r in zip(dirs, runs):
    for name in r["tasks"]:
      meta_file = out / "tasks" / f"{name}.json"
      raw = _load_raw(out / "raw" / name)
      if meta_file.exists() and raw:
        reports[name] = _task_report(json.loads(meta_file.read_text()), raw)
  return run, reports


def _percent(score: tuple[float, float]) -> str:
  return f"{100 * score[0]:.1f} ± {100 * score[1]:.1f}"


def markdown(run: dict, reports: dict[str, TaskReport], order: list[str],
             overall: dict[str, tuple[float, float]], complete: list[str], n_grid: int) -> str:
  """The report's Markdown: scores, minimum errors, learning rates, cuts."""
  tasks = list(reports)

  def unfinished(task: str, name: str) -> bool:
    return reports[task].outcomes[name].n_rates < n_grid
  lines = [
      f"Mode `{run['mode']}`, {len(run['seeds'])} seeds per configuration. "
      "Commands: " + "; ".join(f"`{c}`" for c in run["commands"]) + ".", "",
      "Accuracy score A_i (eqs. 19-20, %) per task and mean A-bar (eqs. 21-22, %) over the tasks "
      f"every optimizer finished ({', '.join(complete) or 'none'}). 100 = best optimizer on the task; "
      "* = learning-rate grid not finished (see the learning-rate table).",
      "",
      "| optimizer | " + " | ".join(tasks) + " | A-bar |",
      "|---" * (len(tasks) + 2) + "|",
  ]
  for name in sorted(order, key=lambda n: -overall.get(n, (-1.0, 0.0))[0]):
    cells = [_percent(reports[t].scores[name]) + ("*" if unfinished(t, name) else "")
             if name in reports[t].scores else "—" for t in tasks]
    lines.append(f"| {name} | " + " | ".join(cells) + f" | "
                 f"{_percent(overall[name]) if name in overall else '—'} |")
  lines += ["", "Minimum test error per seed, mean ± std over seeds, at the chosen learning rate "
            "(failed seeds, with a non-finite error or none below the task's failure error, count as "
            "the failure error; their number is in brackets):", "",
            "| optimizer | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
  for name in order:
    cells = []
    for t in tasks:
      o = reports[t].outcomes.get(name)
      cells.append("—" if o is None else f"{o.minima.mean():.4g} ± {o.minima.std():.2g}"
                   + (f" ({o.n_failed} failed)" if o.n_failed else ""))
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  lines += ["", "Chosen learning rate (s_max for RPROP and CoRe):", "",
            "| optimizer | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
  for name in order:
    cells = [f"{reports[t].outcomes[name].learning_rate:g}"
             + (f" ({reports[t].outcomes[name].n_rates} of {n_grid} tried)"
                if unfinished(t, name) else "")
             if name in reports[t].outcomes else "—" for t in tasks]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  lines += ["", "Tasks (error; extras at each seed's best evaluation are in min_errors.csv) "
            "and what this mode cuts relative to the paper's protocol:", ""]
  for t, report in reports.items():
    lines.append(f"- **{t}** ({report.meta['regime']}; {report.meta['error_name']}): "
                 f"{report.meta['cuts']}")
  return "\n".join(lines) + "\n"


def _write_csvs(report_dir: pathlib.Path, reports: dict[str, TaskReport],
                overall: dict[str, tuple[float, float]]) -> None:
  with open(report_dir / "scores.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["task", "optimizer", "A", "dA"])
    for t, report in reports.items():
      for name, (a, da) in report.scores.items():
        writer.writerow([t, name, f"{a:.6g}", f"{da:.6g}"])
    for name, (a, da) in overall.items():
      writer.writerow(["A-bar", name, f"{a:.6g}", f"{da:.6g}"])
  with open(report_dir / "min_errors.csv", "w", newline="") as f:
    writer = csv.writer(f)
    extra_names = sorted({e for r in reports.values() for o in r.outcomes.values() for e in o.extras})
    writer.writerow(["task", "optimizer", "learning_rate", "mean_min_error", "std_min_error",
                     "n_failed"] + [f"mean_{e}" for e in extra_names])
    for t, report in reports.items():
      for name, o in report.outcomes.items():
        writer.writerow([t, name, f"{o.learning_rate:g}", f"{o.minima.mean():.6g}",
                         f"{o.minima.std():.6g}", o.n_failed]
                        + [f"{o.extras[e].mean():.6g}" if e in o.extras else "" for e in extra_names])


def _colours(order: list[str]) -> dict[str, tuple]:
  cmap = plt.get_cmap("tab20")
  return {name: cmap(i % 20) for i, name in enumerate(order)}


def _hatched_bar(ax, x, value, error, width, colour, horizontal=False):
  """A bar with its uncertainty as a cross-hatched band around its edge (paper's style)."""
  if horizontal:
    ax.barh(x, value, height=width, color=colour, edgecolor="none")
    ax.barh(x, 2 * error, left=value - error, height=width, color="none", edgecolor="black",
            hatch="xxx", linewidth=0)
  else:
    ax.bar(x, value, width=width, color=colour, edgecolor="none")
    ax.bar(x, 2 * error, bottom=value - error, width=width, color="none", edgecolor="black",
           hatch="xxx", linewidth=0)


def _plot_task_scores(path, reports, order, colours):
  fig, ax = plt.subplots(figsize=(2.5 + 1.6 * len(reports), 4.5))
  width = 0.8 / len(order)
  for i, name in enumerate(order):
    for j, report in enumerate(reports.values()):
      if name in report.scores:
        a, da = report.scores[name]
        _hatched_bar(ax, j + (i - (len(order) - 1) / 2) * width, 100 * a, 100 * da, width,
                     colours[name])
  ax.set_xticks(range(len(reports)), list(reports))
  ax.set_ylabel("accuracy score $A_i$ (%)")
  ax.set_ylim(0, 105)
  ax.legend(handles=[matplotlib.patches.Patch(color=colours[n], label=n) for n in order],
            fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _plot_overall(path, overall, colours, complete):
  ranked = sorted(overall, key=lambda n: overall[n][0])
  fig, ax = plt.subplots(figsize=(6, 0.35 * len(ranked) + 1.2))
  for i, name in enumerate(ranked):
    _hatched_bar(ax, i, 100 * overall[name][0], 100 * overall[name][1], 0.8, colours[name],
                 horizontal=True)
  ax.set_yticks(range(len(ranked)), ranked)
  over = ", ".join(complete) if len(complete) <= 4 else f"{len(complete)} tasks"
  ax.set_xlabel(r"mean accuracy score $\bar{A}$ (%) over " + over)
  ax.set_xlim(0, 105)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _plot_convergence(path, task, report, colours):
  best = sorted(report.scores, key=lambda n: -report.scores[n][0])[:N_CONVERGENCE_CURVES]
  fig, ax = plt.subplots(figsize=(6, 4))
  for name in best:
    errors = report.outcomes[name].errors
    mean, std = np.nanmean(errors, axis=0), np.nanstd(errors, axis=0)
    steps = np.arange(1, len(mean) + 1)
    ax.plot(steps, mean, color=colours[name], label=name)
    ax.fill_between(steps, mean - std, mean + std, color=colours[name], alpha=0.2, linewidth=0)
  ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
  ax.set_xlabel("evaluation (epoch)")
  ax.set_ylabel(report.meta["error_name"])
  ax.set_title(f"{task}: the {len(best)} best optimizers, mean ± std over seeds")
  ax.legend(fontsize="small")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def build(dirs: list[pathlib.Path], optimizer_order: list[str],
          report_dir: pathlib.Path | None = None) -> str:
  """Writes the report of one or more runs and returns its Markdown tables.

  Args:
    dirs: run directories (of one mode and seeds).
    optimizer_order: the order of optimizers in tables and legends (the registry's).
    report_dir: where to write; ``dirs[0] / "report"`` by default for one run.

  Returns:
    The content of ``scores.md``.
  """
  if report_dir is None:
    if len(dirs) != 1:
      raise ValueError("A report of several runs needs a report_dir.")
    report_dir = dirs[0] / "report"
  run, reports = load(*dirs)
  present = {name for report in reports.values() for name in report.outcomes}
  order = [n for n in optimizer_order if n in present] + sorted(present - set(optimizer_order))
  n_grid = max(o.n_rates for r in reports.values() for o in r.outcomes.values()) if reports else 0
  complete = [t for t, r in reports.items() if set(r.scores) == present
              and all(o.n_rates == n_grid for o in r.outcomes.values())]
  overall = scoring.overall_scores({t: reports[t].scores for t in complete}) if complete else {}
  report_dir.mkdir(parents=True, exist_ok=True)
  text = markdown(run, reports, order, overall, complete, n_grid)
  (report_dir / "scores.md").write_text(text)
  _write_csvs(report_dir, reports, overall)
  colours = _colours(order)
  if reports:
    _plot_task_scores(report_dir / "task_scores.png", reports, order, colours)
  if overall:
    _plot_overall(report_dir / "overall_scores.png", overall, colours, complete)
  for task, report in reports.items():
    _plot_convergence(report_dir / f"convergence_{task}.png", task, report, colours)
  return text
