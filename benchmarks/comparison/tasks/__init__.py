"""The task registry: every benchmark task, in the paper's order (Table 1, then the MLP), then
the modern track's transformers.

To add a task, write ``benchmarks/comparison/tasks/<name>.py`` defining ``TASK`` (a
:class:`benchmarks.comparison.task.Task`), import the module below and add ``<name>.TASK`` to
``_ALL``. What several tasks share lives in :mod:`benchmarks.comparison.tasks.common`.
:data:`TRACKS` names the tasks each track of ``python -m benchmarks run --track`` runs.
"""

from typing import Mapping

from benchmarks.comparison import task as task_lib
from benchmarks.comparison.tasks import aed
from benchmarks.comparison.tasks import aef
from benchmarks.comparison.tasks import icd
from benchmarks.comparison.tasks import icf
from benchmarks.comparison.tasks import lm_fortunes
from benchmarks.comparison.tasks import mlp
from benchmarks.comparison.tasks import nr
from benchmarks.comparison.tasks import ra
from benchmarks.comparison.tasks import sr
from benchmarks.comparison.tasks import ss
from benchmarks.comparison.tasks import ts
from benchmarks.comparison.tasks import vit_fmnist

_PAPER = (aed.TASK, aef.TASK, icd.TASK, icf.TASK, nr.TASK, ra.TASK, sr.TASK, ss.TASK, ts.TASK,
          mlp.TASK)
_ALL = (*_PAPER, lm_fortunes.TASK, vit_fmnist.TASK)

TASKS: Mapping[str, task_lib.Task] = {task.name: task for task in _ALL}

TRACKS: Mapping[str, tuple[str, ...]] = {
    "paper": tuple(task.name for task in _PAPER),
    "modern": (lm_fortunes.TASK.name, vit_fmnist.TASK.name, mlp.TASK.name, ss.TASK.name),
}
"""The tasks of each track: the paper's ten, and the modern track's transformers with the
ML-potential (MLP-EMT) and graph (SS-csbm) tasks."""
