"""The modern track: its two transformer tasks, its optimizers against their documented
defaults, AlgoPerf's scoring on small synthetic inputs, and the command line."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
from optax import contrib
import pytest

from benchmarks import __main__ as cli
from benchmarks.comparison import cluster
from benchmarks.comparison import optimizers as paper_optimizers
from benchmarks.comparison import runner
from benchmarks.comparison import task as task_lib
from benchmarks.comparison.data import fortunes
from benchmarks.comparison.modern import optimizers
from benchmarks.comparison.modern import report
from benchmarks.comparison.modern import scoring
from benchmarks.comparison.tasks import TASKS
from benchmarks.comparison.tasks import TRACKS
from benchmarks.comparison.tasks import lm_fortunes
from benchmarks.comparison.tasks import vit_fmnist
from benchmarks.comparison.tasks.common import transformer
import core_optax

TINY = transformer.Size(width=16, depth=1, heads=2)


def _loss_falls(loss_fn, params, steps=8, learning_rate=1e-2):
  tx = optax.adam(learning_rate)

  @jax.jit
  def step(params, state):
    updates, state = tx.update(jax.grad(loss_fn)(params), state, params)
    return optax.apply_updates(params, updates), state

  state = tx.init(params)
  first = float(jax.jit(loss_fn)(params))
  for _ in range(steps):
    params, state = step(params, state)
  return first, float(jax.jit(loss_fn)(params))


# Tasks.

def test_char_transformer_gives_next_character_logits_and_learns_a_batch():
  model = lm_fortunes.CharTransformer(TINY)
  tokens = jax.random.randint(jax.random.key(0), (4, 12 + 1), 0, fortunes.VOCABULARY_SIZE)
  params = model.init(jax.random.key(1), tokens[:, :-1])
  assert model.apply(params, tokens[:, :-1]).shape == (4, 12, fortunes.VOCABULARY_SIZE)
  first, last = _loss_falls(
      lambda p: lm_fortunes.cross_entropy(model.apply(p, tokens[:, :-1]), tokens[:, 1:]), params)
  assert first == pytest.approx(np.log(fortunes.VOCABULARY_SIZE), rel=0.05)  # starts uniform
  assert last < first - 0.5


def test_char_transformer_is_causal():
  model = lm_fortunes.CharTransformer(TINY)
  tokens = jnp.arange(10)[None] % fortunes.VOCABULARY_SIZE
  params = model.init(jax.random.key(0), tokens)
  changed = tokens.at[0, 6].set(50)
  a, b = model.apply(params, tokens), model.apply(params, changed)
  np.testing.assert_allclose(a[0, :6], b[0, :6], atol=1e-6)  # the past ignores the future
  assert not np.allclose(a[0, 6:], b[0, 6:])


def test_vit_cuts_patches_row_by_row_and_learns_a_batch():
  images = jax.random.normal(jax.random.key(0), (8, 28, 28))
  patches = vit_fmnist.patches(images)
  assert patches.shape == (8, 16, 49)
  np.testing.assert_array_equal(patches[3, 1], images[3, 0:7, 7:14].ravel())
  np.testing.assert_array_equal(patches[3, 4], images[3, 7:14, 0:7].ravel())
  model = vit_fmnist.ViT(TINY)
  params = model.init(jax.random.key(1), images)
  assert model.apply(params, images).shape == (8, 10)
  labels = jnp.arange(8) % 10
  first, last = _loss_falls(lambda p: optax.softmax_cross_entropy_with_integer_labels(
      model.apply(p, images), labels).mean(), params)
  assert last < first - 0.5


@pytest.mark.parametrize("task", [lm_fortunes.TASK, vit_fmnist.TASK])
def test_transformer_tasks_are_registered_with_their_steps(task):
  assert TASKS[task.name] is task
  assert task.name in TRACKS["modern"] and task.name not in TRACKS["paper"]
  for mode in ("quick", "standard", "full"):
    assert task.n_steps[mode] > 0 and task.cuts[mode]
  assert task.n_steps["quick"] < task.n_steps["standard"] < task.n_steps["full"]


def test_modern_track_has_the_potential_and_graph_tasks_with_their_steps():
  assert TRACKS["modern"] == ("LM-fortunes", "ViT-FMNIST", "MLP-EMT", "SS-csbm")
  assert TASKS["SS-csbm"].n_steps["standard"] == 200  # 200 full-batch epochs
  assert TASKS["MLP-EMT"].n_steps["standard"] == 400  # 40 epochs of 10 mini-batches


# Data.

def test_fortunes_missing_package_says_how_to_install(tmp_path):
  for directory in (tmp_path / "absent", tmp_path):
    with pytest.raises(FileNotFoundError, match="sudo apt-get install fortunes"):
      fortunes.load.__wrapped__(directory)


def test_fortunes_split_by_file_skips_indexes_and_separators(tmp_path):
  for name in (*fortunes.VALIDATION_FILES, "art", "zippy"):
    (tmp_path / name).write_text(f"{name} one\n%\n{name} two\n%\n")
    (tmp_path / f"{name}.dat").write_bytes(b"\x00\x01")
    (tmp_path / f"{name}.u8").symlink_to(tmp_path / name)
  text = fortunes.load.__wrapped__(tmp_path)
  assert fortunes.decode(text.train) == "art one\n\nart two\n\nzippy one\n\nzippy two\n\n"
  assert fortunes.decode(text.validation).startswith("literature one\n\n")
  assert "wisdom two" in fortunes.decode(text.validation)


def test_fortunes_unknown_characters_map_to_one_index():
  codes = fortunes.encode("a\té~")
  assert codes.tolist() == [fortunes.VOCABULARY.index("a"), 0, fortunes.UNKNOWN,
                            fortunes.VOCABULARY.index("~")]
  assert fortunes.VOCABULARY_SIZE == 98


# Optimizers against their documented defaults.

N_STEPS = 40
PEAK_AT = {"AdamW-cos": 1e-3, "NAdamW-cos": 1e-3, "Muon-cos": 0.02, "Lion-cos": 1e-4,
           "AdEMAMix-cos": 1e-3}


def _cosine(peak):
  return optax.warmup_cosine_decay_schedule(0.0, peak, 2, N_STEPS, 0.0)  # 5% of 40 steps


def _schedule_free_reference():
  tx = contrib.schedule_free_adamw(0.0025, warmup_steps=2, b1=0.9, b2=0.999, eps=1e-8,
                                   weight_decay=0.0)
  return task_lib.EvaluatedTransformation(
      tx.init, tx.update, lambda p, s: contrib.schedule_free_eval_params(s, p))


REFERENCES = {
    "AdamW-cos": lambda regime: optax.adamw(_cosine(1e-3), b1=0.9, b2=0.999, eps=1e-8,
                                            weight_decay=0.01),
    "NAdamW-cos": lambda regime: optax.nadamw(_cosine(1e-3), b1=0.9, b2=0.999, eps=1e-8,
                                              weight_decay=0.01),
    "SF-AdamW-wu": lambda regime: _schedule_free_reference(),
    "Muon-cos": lambda regime: contrib.muon(_cosine(0.02), ns_steps=5, beta=0.95, eps=1e-8,
                                            weight_decay=0.0, nesterov=True,
                                            adam_b1=0.9, adam_b2=0.999,
                                            adam_learning_rate=_cosine(1e-3)),
    "Lion-cos": lambda regime: optax.lion(_cosine(1e-4), b1=0.9, b2=0.99, weight_decay=1e-3),
    "AdEMAMix-cos": lambda regime: contrib.ademamix(_cosine(1e-3), b1=0.9, b2=0.999, b3=0.9999,
                                                    alpha=5.0, eps=1e-8, weight_decay=0.0),
    "CoRe-const": lambda regime: core_optax.recommended(regime),
    "CoRe-SP-const": lambda regime: core_optax.recommended(regime, stability_plasticity=True),
    "CoRe-cos": lambda regime: core_optax.core(
        _cosine({"mini-batch": 1e-3, "intermediate": 1e-2, "full-batch": 1.0}[regime])),
}
"""Every optimizer built by hand from the values its docstring documents."""

STEP_TASK = task_lib.Task(name="STEPS", regime="mini-batch", error_name="e", run=None,
                          cuts={}, n_steps={"standard": N_STEPS})


def _trajectory(tx, params, n=4):
  """The parameters after ``n`` steps of a fixed quadratic's gradients."""

  @jax.jit
  def step(params, state, i):
    grads = jax.tree.map(lambda p: p - 0.3 * (i + 1), params)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  state = tx.init(params)
  for i in range(n):
    params, state = step(params, state, i)
  return task_lib.evaluation_params(tx, params, state)


def test_every_optimizer_has_a_reference():
  assert set(REFERENCES) == set(optimizers.OPTIMIZERS)


@pytest.mark.parametrize("name", list(REFERENCES))
@pytest.mark.parametrize("regime", ["mini-batch", "full-batch"])
def test_defaults_match_the_documented_values(name, regime):
  optimizer = optimizers.OPTIMIZERS[name]
  tx = task_lib.for_run(optimizer.build(optimizer.default[regime]),
                        dataclasses.replace(STEP_TASK, regime=regime), "standard")
  params = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.linspace(0.5, 1.0, 4)}
  got, want = _trajectory(tx, params), _trajectory(REFERENCES[name](regime), params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), got, want)
  assert not np.allclose(got["w"], params["w"])


def test_trials_are_the_same_search_for_every_optimizer():
  for optimizer in optimizers.OPTIMIZERS.values():
    for regime in ("mini-batch", "intermediate", "full-batch"):
      rates = optimizer.settings(regime, tuned=True)
      assert len(set(rates)) == len(optimizers.TRIALS) == 3
      assert optimizer.settings(regime, tuned=False) == (optimizer.default[regime],)
      for (rate, warmup), (factor, trial_warmup) in zip(optimizer.trials(regime),
                                                        optimizers.TRIALS):
        assert rate == pytest.approx(optimizer.default[regime] * factor, rel=1e-2)
        assert optimizer.warmup(rate) == warmup == trial_warmup


def test_a_trial_warm_up_reaches_the_schedule():
  adamw = optimizers.OPTIMIZERS["AdamW-cos"]
  rate = adamw.settings("mini-batch", tuned=True)[2]  # warm-up 6.8%: 27 of 400 steps
  tx = adamw.build(rate).build(400)
  params = {"w": jnp.zeros(2)}
  state = tx.init(params)
  for step in range(28):
    _, state = tx.update({"w": jnp.ones(2)}, state, params)
    if step in (0, 13, 26):  # the learning rate the step used
      hyper = optax.warmup_cosine_decay_schedule(0.0, rate, 27, 400, 0.0)(step)
      assert float(optimizers.warmup_cosine(rate, 0.068, 400)(step)) == pytest.approx(hyper)
  assert float(optimizers.warmup_cosine(rate, 0.068, 400)(27)) == pytest.approx(rate)
  assert float(optimizers.warmup_cosine(rate, 0.068, 400)(0)) == 0.0
  with pytest.raises(KeyError, match="no trial"):
    adamw.build(0.5)


def test_scheduled_optimizer_needs_the_task_steps():
  task = task_lib.Task(name="NOSTEPS", regime="mini-batch", error_name="e", run=None, cuts={})
  scheduled = optimizers.OPTIMIZERS["AdamW-cos"].build(1e-3)
  with pytest.raises(ValueError, match="NOSTEPS does not give its number of steps"):
    task_lib.for_run(scheduled, task, "standard")
  plain = optax.sgd(0.1)
  assert task_lib.for_run(plain, task, "standard") is plain


def test_names_are_distinct_from_the_paper_track():
  assert set(optimizers.OPTIMIZERS).isdisjoint(paper_optimizers.OPTIMIZERS)
  assert optimizers.BASELINES == ("AdamW-cos", "NAdamW-cos")


# Scoring on synthetic inputs.

def test_evaluations_to_target_first_hit_and_never():
  errors = np.array([[3.0, 2.0, 1.0], [3.0, 3.0, 3.0], [np.nan, 0.5, 0.4], [2.0, 5.0, 5.0]])
  np.testing.assert_array_equal(scoring.evaluations_to_target(errors, 2.0),
                                [2.0, np.inf, 2.0, 1.0])


def test_target_is_the_best_baselines_median_over_studies_of_its_best_trial():
  a_trial_1 = np.array([[5.0, 1.0], [5.0, 4.0], [9.0, 6.0]])  # seed minima 1, 4, 6
  a_trial_2 = np.array([[5.0, 2.0], [5.0, 2.0], [5.0, 9.0]])  # 2, 2, 5
  b_trial = np.array([[2.5, 2.5], [np.nan, 2.5], [2.5, 2.5]])  # 2.5 each
  # A: best per study 1, 2, 5 -> median 2 (mean 2.7); B: 2.5. Target: 2.
  assert scoring.target({"A": [a_trial_1, a_trial_2], "B": [b_trial]}) == 2.0


def test_rulesets_median_of_defaults_and_of_fastest_trial_per_study():
  times = np.array([[10.0, np.inf, 30.0], [20.0, 5.0, np.inf]])  # trials x studies
  assert scoring.self_tuning_time(times[0]) == 30.0
  assert scoring.external_tuning_time(times) == 10.0  # fastest per study: 10, 5, 30
  assert scoring.self_tuning_time(np.array([1.0, np.inf, np.inf])) == np.inf


def test_profiles_and_their_area():
  times = {"A": {"t1": 10.0, "t2": np.inf}, "B": {"t1": 20.0, "t2": 30.0},
           "C": {"t1": np.inf, "t2": 150.0}}
  ratios = scoring.ratios(times)
  assert ratios["A"] == {"t1": 1.0, "t2": np.inf}
  assert ratios["B"] == {"t1": 2.0, "t2": 1.0}
  np.testing.assert_array_equal(scoring.profile(ratios["B"], np.array([1.0, 1.9, 2.0, 4.0])),
                                [0.5, 0.5, 1.0, 1.0])
  assert scoring.profile_score(ratios["A"]) == pytest.approx(0.5)
  assert scoring.profile_score(ratios["B"]) == pytest.approx((2 / 3 + 1) / 2)
  assert scoring.profile_score(ratios["C"]) == 0.0  # 5x slower counts as never
  taus = np.linspace(1, 4, 30001)
  area = np.trapezoid(scoring.profile(ratios["B"], taus), taus) / 3
  assert scoring.profile_score(ratios["B"]) == pytest.approx(area, abs=1e-3)


def test_unsolved_task_scores_zero_for_everyone():
  ratios = scoring.ratios({"A": {"t": np.inf}, "B": {"t": np.inf}})
  assert scoring.profile_score(ratios["A"]) == scoring.profile_score(ratios["B"]) == 0.0


def _save(out, task, optimizer, rate, errors, wall_s=10.0, compile_s=2.0):
  path = runner.result_path(out, task, optimizer, rate)
  path.parent.mkdir(parents=True, exist_ok=True)
  np.savez(path, errors=errors, seeds=np.arange(errors.shape[0]), learning_rate=rate,
           wall_s=wall_s, compile_s=compile_s)


def test_report_times_a_synthetic_run(tmp_path):
  names = ["AdamW-cos", "NAdamW-cos", "CoRe-const", "CoRe-SP-const"]
  (tmp_path / "run.json").write_text(json.dumps({
      "mode": "standard", "seeds": [0, 1, 2], "tasks": ["SS-csbm"], "optimizers": names,
      "commands": ["python -m benchmarks run --track modern"]}))
  (tmp_path / "tasks").mkdir()
  (tmp_path / "tasks" / "SS-csbm.json").write_text(json.dumps({
      "name": "SS-csbm", "regime": "full-batch", "error_name": "test NLL",
      "failure_error": None, "cuts": "cut"}))
  steps = np.linspace(2.0, 1.0, 200)[None].repeat(3, 0)  # reaches 1.0 at evaluation 200
  for name in names:
    for k, rate in enumerate(optimizers.OPTIMIZERS[name].settings("full-batch", tuned=True)):
      _save(tmp_path, "SS-csbm", name, rate, steps + (0.5 if k else 0.0)
            + (0.0 if "CoRe" not in name else -0.5)
            + (0.01 * (np.arange(200) >= 150) if name == "CoRe-SP-const" else 0.0))
  text = report.build([tmp_path])
  tasks = report._load([tmp_path])[1]  # pylint: disable=protected-access
  assert tasks["SS-csbm"].target == pytest.approx(1.0)
  times = report.ruleset_times(tasks, names, "external tuning", "steps")
  assert times["AdamW-cos"]["SS-csbm"] == 200.0  # 200 steps, one per evaluation
  assert times["CoRe-const"]["SS-csbm"] == 101.0  # 2 - 0.5 - k/199 <= 1 from k = 100
  seconds = report.ruleset_times(tasks, names, "self-tuning", "seconds")
  assert seconds["AdamW-cos"]["SS-csbm"] == pytest.approx(8.0)  # (10 - 2) s, all 200 evals
  assert "| CoRe-const | 101 (1.00) | 1.000 |" in text
  assert "| SS-csbm | 0 | 0.5 | 0.51 | 0.5 | 0.51 | step 151 |" in text  # freezing from 151
  for output in ("modern.md", "time_to_target.csv", "profiles.png", "curves.png"):
    assert (tmp_path / "report" / output).exists()


# Command line.

def test_cli_lists_the_modern_track_and_its_shards(capsys):
  cli.main(["run", "--track", "modern", "--standard", "--list"])
  ids = capsys.readouterr().out.split()
  assert len(ids) == 4 * 9 * 3 and ids[0] == "LM-fortunes/AdamW-cos/lr=0.001"
  shards = []
  for i in (1, 2):
    cli.main(["run", "--track", "modern", "--standard", "--list", "--shard", f"{i}/2"])
    shards.append(capsys.readouterr().out.split())
  assert sorted(shards[0] + shards[1]) == sorted(ids) and not set(shards[0]) & set(shards[1])


def test_cli_paper_track_is_unchanged_by_default(capsys):
  cli.main(["run", "--quick", "--list"])
  ids = capsys.readouterr().out.split()
  assert {i.split("/")[0] for i in ids} == set(TRACKS["paper"])
  assert {i.split("/")[1] for i in ids} == set(paper_optimizers.OPTIMIZERS)


def test_a_worker_process_trains_a_modern_optimizer_by_name():
  trained = cluster._train_in_worker(  # pylint: disable=protected-access
      "SS-csbm", "CoRe-cos", 1.0, np.arange(1), "quick", None)
  assert trained.result.errors.shape == (1, TASKS["SS-csbm"].n_steps["quick"])
  assert trained.result.errors[0, -1] < trained.result.errors[0, 0]
