"""Tables and figures of a ``continual`` run (see :mod:`.runner` for its layout).

``build(out)`` reads ``out/raw`` and writes ``out/report/``: ``results.md`` (every
scenario's tables with means and standard deviations over seeds, the chosen step sizes
and SI strengths, the frozen fractions and how long frozen sets persist, the run's
command and cuts), ``results.json`` (the same numbers), ``earlier_<scenario>.png`` (the
error on the first stage's test set over training, where forgetting shows) and
``final_<scenario>.png`` (the final error per optimizer).
"""

from __future__ import annotations

import json
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import run_directory  # noqa: E402
from benchmarks.continual import metrics  # noqa: E402
from benchmarks.continual import runner  # noqa: E402
from benchmarks.continual import scenarios as scenarios_lib  # noqa: E402


def _load(directory: pathlib.Path) -> dict[str, dict[str, np.ndarray]]:
  """``{optimizer: saved arrays}`` of one scenario, in the scenario's optimizer order."""
  found = {}
  for path in run_directory.saved_files(directory, "*.npz"):
    arrays = run_directory.load(path)
    found[str(arrays["name"])] = arrays
  order = list(scenarios_lib.SCENARIOS[directory.name].optimizers)
  return {name: found[name] for name in sorted(found, key=order.index)}


def _metric(saved: dict[str, np.ndarray], name: str) -> np.ndarray:
  return saved[f"metric_{name}"]


def _pm(values: np.ndarray, digits: int = 1) -> str:
  values = np.asarray(values, dtype=np.float64)
  return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _choices(saved: dict[str, np.ndarray]) -> str:
  text = f"{float(saved['learning_rate']):g}"
  strength = float(saved["si_strength"])
  return text + (f", c={strength:g}" if np.isfinite(strength) else "")


def _potential_lifelong(scenario, runs) -> tuple[str, dict]:
  tests = scenario.test_names
  rows, numbers = [], {}
  for name, saved in runs.items():
    epochs = saved["stage_epochs"]
    energy = metrics.after_each_stage(_metric(saved, "energy_rmse"), epochs)
    force = metrics.after_each_stage(_metric(saved, "force_rmse"), epochs)
    loss = _metric(saved, "loss")
    last_stage = loss[:, -int(epochs[-1]):, :].mean(axis=2)
    smooth = metrics.smoothness_error(last_stage)
    forgot = force[:, -1, 0] - force[:, 0, 0]
    numbers[name] = {
        "energy_rmse_final": energy[:, -1].mean(0).tolist(),
        "force_rmse_final": force[:, -1].mean(0).tolist(),
        "force_rmse_final_mean": float(force[:, -1].mean()),
        "force_rmse_after_each_stage": force.mean(0).tolist(),
        "forgetting_A_force": float(forgot.mean()), "smoothness_loss": smooth[0],
        "wall_s": float(saved["wall_s"])}
    rows.append([name, _choices(saved),
                 *(_pm(energy[:, -1, j]) for j in range(len(tests))),
                 *(_pm(force[:, -1, j], 0) for j in range(len(tests))),
                 _pm(force[:, -1].mean(1), 0), _pm(forgot, 0),
                 f"{smooth[0]:.4f} ± {smooth[1]:.4f}", f"{float(saved['wall_s']):.0f}"])
  header = ["optimizer", "lr (s_max), SI c",
            *(f"E RMSE {t} (meV/atom)" for t in tests), *(f"F RMSE {t} (meV/A)" for t in tests),
            "F RMSE mean", f"F RMSE {tests[0]}: end - after {scenario.stage_names[0]}",
            "smoothness loss (last stage)", "wall s"]
  text = ("At the end of training, on every stage's test set (mean ± std over seeds). "
          "'end - after' > 0 is forgetting. The smoothness loss is the paper's criterion: "
          "the mean test loss over the three test sets of every seed at every seed's best "
          "epoch of the last stage (± the std of those n_seeds^2 values).\n\n"
          + _table(header, rows) + "\n\nForce RMSE (meV/A, mean over seeds) on each test "
          "set (columns) after each stage (rows):\n\n")
  for name, saved in runs.items():
    matrix = numbers[name]["force_rmse_after_each_stage"]
    text += f"- {name}: " + "; ".join(
        f"after {s}: " + " / ".join(f"{v:.0f}" for v in row)
        for s, row in zip(scenario.stage_names, matrix)) + "\n"
  return text, numbers


def _potential_stationary(scenario, runs) -> tuple[str, dict]:
  rows, numbers = [], {}
  for name, saved in runs.items():
    loss = _metric(saved, "loss")[:, :, 0]
    best = np.argmin(loss, axis=1)
    take = lambda m: _metric(saved, m)[np.arange(len(best)), best, 0]
    not_last = float(np.mean(best < loss.shape[1] - 1))
    smooth = metrics.smoothness_error(loss)
    numbers[name] = {"min_loss": float(loss.min(1).mean()), "smoothness_loss": smooth[0],
                     "energy_rmse_best": float(take("energy_rmse").mean()),
                     "force_rmse_best": float(take("force_rmse").mean()),
                     "best_not_last": not_last, "wall_s": float(saved["wall_s"])}
    rows.append([name, _choices(saved), _pm(loss.min(1), 4), f"{smooth[0]:.4f} ± {smooth[1]:.4f}",
                 _pm(take("energy_rmse")), _pm(take("force_rmse"), 0),
                 _pm(_metric(saved, "force_rmse")[:, -1, 0], 0), f"{not_last:.0%}",
                 f"{float(saved['wall_s']):.0f}"])
  header = ["optimizer", "lr (s_max)", "min test loss", "smoothness loss", "E RMSE at best "
            "(meV/atom)", "F RMSE at best (meV/A)", "F RMSE last epoch", "best epoch not last",
            "wall s"]
  return ("Early stopping per seed (the test loss's best epoch), the paper's smoothness "
          "criterion, and the fraction of seeds whose best epoch is not the last.\n\n"
          + _table(header, rows) + "\n", numbers)


def _classification(scenario, runs) -> tuple[str, dict]:
  rows, numbers = [], {}
  for name, saved in runs.items():
    matrix = metrics.after_each_stage(_metric(saved, "accuracy"), saved["stage_epochs"])
    average = metrics.average_accuracy(matrix)
    bwt = metrics.backward_transfer(matrix)
    plastic = metrics.plasticity(matrix)
    numbers[name] = {"average_accuracy": float(average.mean()),
                     "average_accuracy_std": float(average.std()),
                     "backward_transfer": float(bwt.mean()), "plasticity": float(plastic.mean()),
                     "accuracy_matrix": matrix.mean(0).tolist(), "wall_s": float(saved["wall_s"])}
    rows.append([name, _choices(saved), _pm(100 * average), _pm(100 * bwt), _pm(100 * plastic),
                 f"{float(saved['wall_s']):.0f}"])
  header = ["optimizer", "lr (s_max), SI c", "average accuracy %", "backward transfer %",
            "plasticity %", "wall s"]
  text = ("Average accuracy over all tasks after the last; backward transfer mean_j<T "
          "(R[T,j] - R[j,j]) (negative: forgetting); plasticity mean_j R[j,j] (accuracy on "
          "the newest task). Mean ± std over seeds.\n\n" + _table(header, rows)
          + "\n\nAccuracy matrix R[i, j] (%, mean over seeds; row: after task i, column: "
          "task j):\n\n")
  for name in runs:
    text += f"- {name}: " + " / ".join(
        "[" + " ".join(f"{100 * v:.0f}" for v in row) + "]"
        for row in numbers[name]["accuracy_matrix"]) + "\n"
  return text, numbers


def _freezing(runs) -> tuple[str, dict]:
  rows, numbers = [], {}
  for name, saved in runs.items():
    if "frozen" not in saved:
      continue
    frozen, n = saved["frozen"], float(saved["n_weights"])
    active = frozen > 0
    if not active.any():
      continue
    nominal = float(saved["n_frozen_nominal"])
    actual = frozen[active] / n
    kept = metrics.persistence(saved["persisting"], saved["reference"], saved["stage_updates"])
    numbers[name] = {"p_frozen": float(saved["frozen_fraction"]), "nominal": nominal / n,
                     "actual_mean": float(actual.mean()), "actual_max": float(actual.max()),
                     "excess_max_weights": float(frozen.max() - nominal), "persistence": kept}
    rows.append([name, f"{float(saved['frozen_fraction']):g}", f"{nominal / n:.4f}",
                 f"{actual.mean():.4f}", f"{actual.max():.4f}", f"{frozen.max() - nominal:.0f}",
                 *(f"{kept[k]:.2f}" for k in ("1", "10", "100", "end"))])
  if not rows:
    return "", numbers
  header = ["optimizer", "p_frozen", "floor(p n) / n", "frozen, mean", "frozen, max",
            "max excess (weights)", "still frozen +1", "+10", "+100", "at stage end"]
  return ("Frozen fraction of all weights over the updates that froze (CoRe's tie band "
          "freezes every score >= 0.999999 x the k-th largest, so it can exceed "
          "floor(p n) / n), and the fraction of a stage's first frozen set still frozen "
          "1, 10, 100 updates later and at the stage's end.\n\n" + _table(header, rows) + "\n",
          numbers)


_SECTIONS = {"potential-stationary": _potential_stationary}


def _figures(scenario, runs, to: pathlib.Path) -> None:
  """The error on the first test set over training, and the final error per optimizer."""
  potential = scenario.kind == "potential"
  metric, label = (("force_rmse", "force RMSE (meV/A)") if potential
                   else ("accuracy", "accuracy"))
  fig, ax = plt.subplots(figsize=(8, 4.5), dpi=90)
  for name, saved in runs.items():
    values = _metric(saved, metric)[:, :, 0]
    mean, std = values.mean(0), values.std(0)
    x = np.arange(1, len(mean) + 1)
    (line,) = ax.plot(x, mean, label=name, linewidth=1.2)
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.15)
  first = next(iter(runs.values()))
  for end in metrics.stage_ends(first["stage_epochs"])[:-1]:
    ax.axvline(end + 1.5, color="gray", linewidth=0.8)
  if potential:
    ax.set_yscale("log")
  ax.set(xlabel="epoch (stages separated by lines)",
         ylabel=f"{label} on {scenario.test_names[0]}",
         title=f"{scenario.name}: test set {scenario.test_names[0]} over training")
  ax.legend(fontsize=7, ncol=2)
  fig.tight_layout()
  fig.savefig(to / f"earlier_{scenario.name}.png")
  plt.close(fig)

  fig, ax = plt.subplots(figsize=(8, 4), dpi=90)
  names = list(runs)
  final = [_metric(runs[n], metric)[:, -1, :].mean(1) for n in names]
  ax.bar(range(len(names)), [f.mean() for f in final], yerr=[f.std() for f in final],
         capsize=3, color="tab:blue")
  ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=7)
  ax.set(ylabel=f"final {label}, mean over test sets",
         title=f"{scenario.name}: at the end (mean ± std over seeds)")
  fig.tight_layout()
  fig.savefig(to / f"final_{scenario.name}.png")
  plt.close(fig)


def build(out: pathlib.Path, to: pathlib.Path | None = None) -> str:
  """Writes the report of the run in ``out`` to ``to`` (default ``out/report``).

  Returns:
    The text of ``results.md``.

  Raises:
    ValueError: if ``out`` is not a ``continual`` run or holds no results.
  """
  out = pathlib.Path(out)
  meta = json.loads((out / "run.json").read_text())
  if meta.get("kind") != runner.KIND:
    raise ValueError(f"{out} is not a continual run (its run.json has no kind "
                     f"{runner.KIND!r}).")
  to = pathlib.Path(to) if to else out / "report"
  to.mkdir(parents=True, exist_ok=True)
  text = [f"# Continual learning: does CoRe's freezing help? ({meta['mode']} mode, "
          f"{len(meta['seeds'])} seeds)\n",
          "Commands (each resumed the directory, rerunning what its budget changed): "
          + ", then ".join(f"`{c}`" for c in meta["commands"]) + "\n"
          if len(meta["commands"]) > 1 else f"Command: `{meta['commands'][0]}`\n"]
  numbers = {}
  for name in meta["scenarios"]:
    scenario = scenarios_lib.SCENARIOS[name]
    directory = out / "raw" / name
    runs = _load(directory) if directory.exists() else {}
    text.append(f"## {name}\n\nCuts: {meta['cuts'].get(name, '')}.\n")
    if not runs:
      text.append("Not run yet.\n")
      continue
    missing = [o.name for o in runner.optimizers_of(scenario, meta["mode"]) if o.name not in runs]
    if missing:
      text.append(f"Missing (not finished): {', '.join(missing)}.\n")
    first = next(iter(runs.values()))
    text.append(f"t_hist = {int(first['score_history'])}; updates per stage "
                f"{first['stage_updates'].tolist()}; step sizes chosen on the first stage"
                + (" (freezing variants and controls with CoRe's, which they equal there)"
                   if bool(first["shared_tuning"]) else "") + ".\n")
    section = _SECTIONS.get(name, _classification if scenario.kind == "classification"
                            else _potential_lifelong)
    body, numbers[name] = section(scenario, runs)
    frozen_text, numbers[name + ":freezing"] = _freezing(runs)
    text += [body, frozen_text]
    _figures(scenario, runs, to)
  cuts = "\n".join(f"- {k}: {v}" for k, v in meta["cuts"].items())
  text.append(f"## Cuts\n\n{cuts}\n")
  result = "\n".join(text)
  (to / "results.md").write_text(result)
  (to / "results.json").write_text(json.dumps(numbers, indent=1))
  return result
