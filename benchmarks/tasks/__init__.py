"""The task registry: every benchmark task, in the paper's order (Table 1, then the MLP).

To add a task, write ``benchmarks/tasks/<name>.py`` defining ``TASK`` (a
:class:`benchmarks.task.Task`), import the module below and add ``<name>.TASK`` to ``_ALL``.
"""

from typing import Mapping

from benchmarks import task as task_lib
from benchmarks.tasks import aed, aef, icd, icf, mlp, nr, ra, sr, ss, ts

_ALL = (aed.TASK, aef.TASK, icd.TASK, icf.TASK, nr.TASK, ra.TASK, sr.TASK, ss.TASK, ts.TASK,
        mlp.TASK)

TASKS: Mapping[str, task_lib.Task] = {task.name: task for task in _ALL}
