"""Imported by the process the batch pool's workers are forked from (``runner._context``), before it forks them.

papermill imported and the HTML exporter made, its templates compiled (``pages.warm_up``), once there: every
worker starts with them rather than doing them itself (about 0.4 s of CPU a worker, at the batch's start, while
the kernels' zygote imports for the first runs). Nothing here starts a thread: a fork carries none.
"""

from __future__ import annotations

# runner first: importing it keeps nbformat's schema checker from compiling a grammar it never uses (about 1 s),
# which it must do before papermill imports nbformat.
from gnaexp.batch import runner  # noqa: F401 — what the workers run
import papermill  # noqa: F401 — imported for the workers
from gnaexp.present import pages

try:
    pages.warm_up()
except Exception:  # noqa: BLE001 — each worker then warms up itself (runner.prepare_kernels)
    pass
