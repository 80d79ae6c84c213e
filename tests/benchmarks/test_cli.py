"""``python -m benchmarks``: one CLI, every verb parses and imports its module."""

import pytest

from benchmarks import __main__ as cli

VERBS = ["run", "report", *cli.STUDIES]


def test_every_study_has_a_verb_and_its_hooks():
  assert set(cli.STUDIES) == {"step-speed", "sharded-step", "accelerator-cost",
                              "state-dtype-accuracy",
                              "selection-passes", "model-trees", "vmap-selection",
                              "vmap-speedup", "tie-band"}
  for verb in cli.STUDIES:
    module = cli._study(verb)
    assert callable(module.add_arguments) and callable(module.main)


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help(verb, capsys):
  with pytest.raises(SystemExit) as exit_:
    cli._parser(verb).parse_args([verb, "--help"])
  assert exit_.value.code == 0
  assert "usage: python -m benchmarks " + verb in capsys.readouterr().out


def test_a_study_keeps_its_options():
  args = cli._parser("step-speed").parse_args(["step-speed", "--quick", "--torch-device", "cuda"])
  assert args.quick and args.torch_device == "cuda" and args.out is None
  args = cli._parser("vmap-speedup").parse_args(["vmap-speedup", "--task", "TS", "--seeds", "2"])
  assert (args.task, args.optimizer, args.seeds, args.mode) == ("TS", "CoRe", 2, "quick")
