"""GNA integer emulator: runs a model with the GNA plugin's load-time rewrites, quantization and integer arithmetic,
as one plugin release computes them.

Modules, one job each:
- reading: ``ir_reader`` (model → small graph), ``porting`` (host parts and the exact rewrites a porting team
  makes), ``recurrent`` (LSTM/GRU sequences, cells and TensorIterators rewritten as the plugin does), ``mvn`` (MVN
  decomposed as DecomposeMVN does), ``plugin_checks`` (what the plugin refuses at load);
- rules: ``releases`` (what each plugin release computes differently), ``quantize`` (input/weight/bias
  quantization, scale-factor rules), ``pwl`` (identity/ReLU/Clamp segments and their evaluation), ``pwl_search``
  (the plugin's PWL design search, in its own float order), ``activations`` (designed PWLs and their encoding);
- the plan: ``graph`` (quantization plan and execution) built by the op handlers of ``registry`` on one
  ``context``: ``weightable``, ``conv2d``, ``eltwise``, ``activations``, ``memory``, ``state_layers``, ``moves``,
  ``pooling``, ``porting``; ``plan_types`` (steps and tensor facts), ``plan_row`` (what the plan reports of each
  step, typed, with its JSON form);
- arithmetic: ``conv`` (the 1-D convolution primitive on interleaved memory), ``native`` (compiled loops),
  ``parallel`` (batches across the cores), ``primitives`` (the integer operations as public functions);
- the compiled plan: ``plan_compile`` (steps lowered to rows of one loop; ``plan_conv``: a convolution's row),
  ``native_plan`` (the loop), ``native_conv`` and ``native_windows`` (its convolutions and their windows),
  ``native_pwl`` (its PWLs), ``native_gemm`` (the int16 product), ``native_pool`` (a batch's blocks shared by
  the cores inside the loop);
- entry points: ``api`` (``emulate``), ``sweep`` (scale-factor sweeps), ``support`` (the per-op support report,
  with ``plugin_ops``: what the plugin does with ops the emulator does not run).
"""

from gnaexp.emulator.api import Emulation, emulate, load_program
from gnaexp.emulator.graph import LAYOUTS, RULES_VERSION
from gnaexp.emulator.ir_reader import SUPPORTED_OPS, UnsupportedOpError

__all__ = ["emulate", "Emulation", "load_program", "LAYOUTS", "RULES_VERSION", "SUPPORTED_OPS",
           "UnsupportedOpError"]
