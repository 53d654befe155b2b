"""GNA integer emulator: runs an OpenVINO IR with the GNA plugin's quantization and integer arithmetic.

Modules, one job each: ``quantize`` (input/weight/bias quantization, scale-factor rules), ``pwl`` (activation
segments and their evaluation), ``conv`` (the 1-D convolution primitive on interleaved memory), ``ir_reader``
(IR → small graph), ``graph`` (quantization plan and execution, by the op handlers of ``registry`` on one ``context``), ``api`` (``emulate``), ``sweep``
(scale-factor sweeps), ``commands`` (CLI subcommands).
"""

from gnaexp.emulator.api import Emulation, emulate, load_program
from gnaexp.emulator.graph import LAYOUTS, RULES_VERSION
from gnaexp.emulator.ir_reader import SUPPORTED_OPS, UnsupportedOpError

__all__ = ["emulate", "Emulation", "load_program", "LAYOUTS", "RULES_VERSION", "SUPPORTED_OPS",
           "UnsupportedOpError"]
