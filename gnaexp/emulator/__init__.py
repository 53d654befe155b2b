"""GNA integer emulator: runs a model with the GNA plugin's load-time rewrites, quantization and integer arithmetic.

Modules, one job each: ``quantize`` (input/weight/bias quantization, scale-factor rules), ``pwl`` (activation
segments and their evaluation), ``conv`` (the 1-D convolution primitive on interleaved memory), ``recurrent``
(LSTM/GRU sequences, cells and TensorIterators rewritten as the plugin does), ``mvn`` (MVN decomposed as
DecomposeMVN does), ``ir_reader`` (model → small
graph), ``graph`` (quantization plan and execution, by the op handlers of ``registry`` on one ``context``:
``weightable``, ``eltwise``, ``activations``, ``memory``, ``pooling``, ``porting``), ``api`` (``emulate``), ``sweep``
(scale-factor sweeps), ``support`` (the per-op support report, with ``plugin_ops``: what the plugin does with
ops the emulator does not run).
"""

from gnaexp.emulator.api import Emulation, emulate, load_program
from gnaexp.emulator.graph import LAYOUTS, RULES_VERSION
from gnaexp.emulator.ir_reader import SUPPORTED_OPS, UnsupportedOpError

__all__ = ["emulate", "Emulation", "load_program", "LAYOUTS", "RULES_VERSION", "SUPPORTED_OPS",
           "UnsupportedOpError"]
