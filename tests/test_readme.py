"""The README: its set-up commands come first, its Python code runs as written, its links
resolve, and it describes the software as it is."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_examples():
  assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index):
  namespace = {}
  exec(compile("import jax, jax.numpy as jnp, optax, core_optax\n" + BLOCKS[index],
               f"README block {index}", "exec"), namespace)


def _github_anchor(heading: str) -> str:
  """The id GitHub gives a Markdown heading."""
  return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_readme_starts_with_the_two_setup_commands():
  """The main job and the tests come first: they are the project's contract."""
  first_block = re.search(r"```(\w*)\n(.*?)```", README.read_text(), flags=re.S)
  assert first_block.group(1) == "bash"
  main_job, tests = first_block.group(2).strip().splitlines()
  assert main_job.startswith("bash scripts/setup.sh bench && .venv/bin/python -m benchmarks run")
  assert tests.split("#")[0].strip() == "bash scripts/setup.sh test && .venv/bin/python -m pytest"


def test_ci_runs_the_readme_test_command():
  first_block = re.search(r"```\w*\n(.*?)```", README.read_text(), flags=re.S).group(1)
  test_command = first_block.strip().splitlines()[1].split("#")[0].strip()
  assert test_command in (README.parent / ".ci" / "run").read_text()


def test_readme_links_point_at_files_and_headings_that_exist():
  text = README.read_text()
  for target in re.findall(r"\]\(([^)\s]+)\)", text):
    if re.match(r"[a-z]+:", target):
      continue  # a web address
    path, _, anchor = target.partition("#")
    file = README.parent / path if path else README
    assert file.exists(), target
    if anchor and file.suffix == ".md":
      headings = re.findall(r"^#+ (.*)$", file.read_text(), flags=re.M)
      assert anchor in {_github_anchor(h) for h in headings}, target


@pytest.mark.parametrize("phrase", ["this round", "the issue's", "we have not found out",
                                    "before the change", "at commit"])
def test_readme_describes_the_software_not_its_history(phrase):
  assert phrase not in README.read_text().lower()


def test_readme_names_no_commits():
  hashes = [word for word in re.findall(r"\b[0-9a-f]{7,40}\b", README.read_text())
            if re.search(r"[a-f]", word) and re.search(r"[0-9]", word)]
  assert not hashes, hashes
