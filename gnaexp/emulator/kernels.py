"""Which implementation runs an inner loop of the emulator: the compiled one (native.py) or its NumPy equivalent.

Why: importing numba and loading the compiled loops from their disk cache costs a process about 0.8 s, once. A
short command (a diagnosis of a small net: some thirty emulations of a few thousand values) would spend most
of its time there. So a process's first work runs as the NumPy equivalents, which compute the same values bit
for bit (each is tested against its loop), and the compiled loops are loaded once the process has done
COMPILED_AFTER values' worth of work (at once or in total); from then on every call runs compiled.
"""

from __future__ import annotations

import sys
import threading
from types import ModuleType

# Values (multiply-adds for a convolution) the NumPy equivalents take before the compiled loops are loaded: NumPy
# does them in some 50 ms, a small part of the load they spare.
COMPILED_AFTER = 5_000_000

_NATIVE = "gnaexp.emulator.native"
_lock = threading.Lock()
_done = 0
_native: ModuleType | None = None


def compiled(work: int) -> ModuleType | None:
    """The compiled loops (``native``) for a call of ``work`` values, or None: run the NumPy equivalent."""
    global _done, _native
    if _native is None:
        with _lock:  # held through the import: a thread that comes meanwhile waits for the whole module
            _done += int(work)
            if _done < COMPILED_AFTER and _NATIVE not in sys.modules:  # not loaded yet by a warm-up or an import
                return None
            from gnaexp.emulator import native

            _native = native
    return _native
