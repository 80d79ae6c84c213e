"""``python -m benchmarks continual-floor``: the stationary potential trained long (quick data)."""

from benchmarks import __main__ as cli


def test_the_cli_trains_the_floor_and_prints_its_table(capsys):
  cli.main(["continual-floor", "--mode", "quick", "--epochs", "2", "--seeds", "1",
            "--optimizers", "core"])
  out = capsys.readouterr().out
  assert "Stationary potential data of quick mode" in out
  assert "| CoRe s_max 1e-2 |" in out and "F RMSE epoch 2" in out
