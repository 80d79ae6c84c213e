"""English text from Debian's ``fortunes`` package, as characters, for LM-fortunes.

The package puts one plain-text file per topic under ``/usr/share/games/fortunes`` (about
2.5 MB in 43 files, fortunes separated by lines holding only ``%``; next to each file are its
``.dat`` index and a ``.u8`` link, both skipped). The split is by file and fixed:
:data:`VALIDATION_FILES` (literature, science, wisdom: about 245 kB, 10% of the text) are the
validation text, every other topic file the training text, concatenated in sorted name order.
The ``%`` lines become blank lines.

Characters map to :data:`VOCABULARY`: tab, newline and printable ASCII (space to ``~``), plus
one last index for every other character (accented letters and the like, well under 1% of
the text).
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib

import numpy as np

DIRECTORY = pathlib.Path("/usr/share/games/fortunes")
INSTALL_HINT = "sudo apt-get install fortunes"
VALIDATION_FILES = ("literature", "science", "wisdom")
VOCABULARY = "\t\n" + "".join(chr(c) for c in range(32, 127))
UNKNOWN = len(VOCABULARY)
VOCABULARY_SIZE = len(VOCABULARY) + 1  # 98: the characters above and the unknown one.


@dataclasses.dataclass(frozen=True)
class Text:
  """The two halves of the split as character indices (uint8, ``< VOCABULARY_SIZE``)."""

  train: np.ndarray
  validation: np.ndarray


def encode(text: str) -> np.ndarray:
  """Character indices of ``text``; characters outside :data:`VOCABULARY` map to UNKNOWN."""
  table = np.full(0x110000, UNKNOWN, dtype=np.uint8)
  table[[ord(c) for c in VOCABULARY]] = np.arange(len(VOCABULARY), dtype=np.uint8)
  return table[np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)]


def decode(indices: np.ndarray) -> str:
  """The text of character indices (UNKNOWN reads as ``?``)."""
  return "".join(VOCABULARY[i] if i < UNKNOWN else "?" for i in np.asarray(indices))


def _read(path: pathlib.Path) -> str:
  text = path.read_bytes().decode("utf-8", errors="replace")
  return "\n".join("" if line == "%" else line for line in text.splitlines()) + "\n"


@functools.cache
def load(directory: pathlib.Path = DIRECTORY) -> Text:
  """Reads the topic files and splits them by file.

  Args:
    directory: where the package put its files.

  Returns:
    The training and validation text as character indices.

  Raises:
    FileNotFoundError: the package's files are missing; the message says how to install them.
  """
  files = sorted(p for p in directory.glob("*") if p.is_file() and not p.is_symlink()
                 and p.suffix not in (".dat", ".u8")) if directory.is_dir() else []
  missing = [name for name in VALIDATION_FILES if directory / name not in files]
  if not files or missing:
    raise FileNotFoundError(
        f"The fortunes text files {list(VALIDATION_FILES) if not files else missing} were not "
        f"found in {directory}. Install Debian's fortunes package with `{INSTALL_HINT}`.")
  train = "".join(_read(p) for p in files if p.name not in VALIDATION_FILES)
  validation = "".join(_read(directory / name) for name in VALIDATION_FILES)
  return Text(train=encode(train), validation=encode(validation))
