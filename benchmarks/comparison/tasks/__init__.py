"""The task registry: every benchmark task, in the paper's order (Table 1, then the MLP).

To add a task, write ``benchmarks/comparison/tasks/<name>.py`` defining ``TASK`` (a
:class:`benchmarks.comparison.task.Task`), import the module below and add ``<name>.TASK`` to
``_ALL``. What several tasks share lives in :mod:`benchmarks.comparison.tasks.common`.
"""

from typing import Mapping

from benchmarks.comparison import task as task_lib
from benchmarks.comparison.tasks import aed
from benchmarks.comparison.tasks import aef
from benchmarks.comparison.tasks import icd
from benchmarks.comparison.tasks import icf
from benchmarks.comparison.tasks import mlp
from benchmarks.comparison.tasks import nr
from benchmarks.comparison.tasks import ra
from benchmarks.comparison.tasks import sr
from benchmarks.comparison.tasks import ss
from benchmarks.comparison.tasks import ts

_ALL = (aed.TASK, aef.TASK, icd.TASK, icf.TASK, nr.TASK, ra.TASK, sr.TASK, ss.TASK, ts.TASK,
        mlp.TASK)

TASKS: Mapping[str, task_lib.Task] = {task.name: task for task in _ALL}
