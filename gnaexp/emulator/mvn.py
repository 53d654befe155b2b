"""MVN as the GNA plugin transforms it at load, before any layer is quantized.

The plugin's pipeline [S: src/plugins/intel_gna/src/gna_transformations_pipeline.cpp @2023.1.0,
``TransformationsPipeline::apply``] registers ``ConvertMVN1ToMVN6`` then ``DecomposeMVN`` first of all, before
``CommonOptimizations``. This module applies the same rewrite to the ``openvino.Model`` the emulator reads, on a
clone, so the emulator's rules then quantize the result.

- ConvertMVN1ToMVN6 [S: src/common/transformations/src/transformations/op_conversions/convert_mvn1_to_mvn6.cpp]:
  an MVN-1 becomes an MVN-6 whose axes run from 1 (across channels) or 2 to the last.
- DecomposeMVN [S: src/plugins/intel_gna/src/transformations/decompose_mvn.cpp ``GetVerifiedMVNData``,
  ``Decompose``, ``NormalizeVariance``] takes an MVN-6 of rank 3 [C, H, W] or 4 [1, C, H, W] (batch 1) whose
  axes are rank − 2 in number and start at 2; the mean is taken over W, per row of the C·H rows (for rank 4 the
  H axis is in the axes but each row gets its own mean [I: read from the code; it equals MVN only when H = 1]).
  W is cut in ``parts`` (doubled while W/parts > 768, kConvFilterMaxSize; W must divide) and:
  1. ``_Avg1``: a 1×1 convolution of the rows' parts with 8 filters of −1/W (each filter the same);
  2. ``_Avg2``: a 1×1 convolution with W filters that sums the first of the 8 copies of every part: −mean,
     broadcast over the row;
  3. ``_SubMean``: x + (−mean) (eltwise sum);
  with normalize_variance:
  4. ``_SqrDiff``: d·d (eltwise product); ``_Avg3``/``_Avg4``: the same two convolutions, with +1/W: the
     variance broadcast over the row;
  5. + eps (always inside the square root, whatever eps_mode says), ``_LogVarEps``: Log (PWL),
     ``_LogInvStdev``: × −0.5 (ScaleShift), ``_InvStdev``: Exp (PWL);
  6. ``_Output``: d · 1/σ (eltwise product); the result reshaped back, named as the MVN.
  The plugin's 1×1 convolutions sit between Transposes (NCHW ↔ NHWC) that it does not execute: the emulator
  writes each as a 1-D convolution over the rows (channels = the values of one row part), whose interleaved
  input is the rows' memory as it is.
An MVN outside these conditions is left to ``CommonOptimizations`` (``MVN6Decomposition``: ReduceMean, which
the plugin has no layer for): it stays refused, with that reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gnaexp.emulator.recurrent import Rewrite, replace_output, stable_name

SOURCE_TAG = "2023.1.0"
PIPELINE = "src/plugins/intel_gna/src/gna_transformations_pipeline.cpp"
DECOMPOSE = "src/plugins/intel_gna/src/transformations/decompose_mvn.cpp"
MVN1 = "src/common/transformations/src/transformations/op_conversions/convert_mvn1_to_mvn6.cpp"
CONV_FILTER_MAX_SIZE = 768  # Limitations::kConvFilterMaxSize, backend/gna_limitations.hpp
MVN_OPS = {"MVN"}

# What the 2023.1 pipeline does with a layer norm written as ReduceMean / Subtract / Power / Sqrt / Divide:
# MVNFusion [S: common_optimizations/mvn_fusion.cpp] runs inside CommonOptimizations (MOCTransformations,
# common_optimizations.cpp), i.e. after DecomposeMVN; the same CommonOptimizations then applies MVN6Decomposition
# [S: op_conversions/mvn6_decomposition.cpp], which writes the fused MVN back with ReduceMean and registers no new
# nodes, so ConvertReduceMeanToPooling does not revisit them [I: read from graph_rewrite.cpp]: ReduceMean reaches
# the layer check and the load stops.
LAYER_NORM_NOTE = ("; a layer norm written with ReduceMean is fused into an MVN by MVNFusion only inside "
                   "CommonOptimizations, after DecomposeMVN has run, and MVN6Decomposition there writes it back with "
                   "ReduceMean, so the 2023.1 plugin refuses it (common_optimizations.cpp, mvn_fusion.cpp, "
                   "mvn6_decomposition.cpp); to run a layer norm, convert the model to IR (ovc MODEL, or "
                   "openvino.convert_model and save_model): the converter fuses it into an MVN, which DecomposeMVN "
                   "decomposes; --porting (porting=True in Python) reads the model that way")


def _ops():
    import openvino.opset8 as ops

    return ops


def _i64(*values: int) -> Any:
    return _ops().constant(np.array(values, dtype=np.int64))


def _named(node: Any, name: str) -> Any:
    node.set_friendly_name(name)
    return node


def axes_of(op: Any) -> list[int] | None:
    """The MVN's axes, non-negative: MVN-6 reads its constant input, MVN-1 gets them as ConvertMVN1ToMVN6 writes
    them (from 1 across channels, else from 2, to the last); None when they are not constant."""
    rank = op.get_output_partial_shape(0).rank.get_length()
    if op.get_input_size() == 1:  # MVN-1
        start = 1 if op.get_attributes().get("across_channels") else 2
        return list(range(start, rank))
    node = op.input_value(1).get_node()
    if node.get_type_name() != "Constant":
        return None
    return [int(a) % rank for a in np.asarray(node.get_data()).reshape(-1)]


def problem(op: Any) -> str:
    """Why DecomposeMVN would not decompose this MVN, or '' (GetVerifiedMVNData and the matcher's rank and batch
    check)."""
    ps = op.get_output_partial_shape(0)
    if ps.is_dynamic:
        return "its input shape is dynamic: give the input shape (an input file or --shape) to reshape the model"
    shape = [d.get_length() for d in ps]
    if len(shape) not in (3, 4) or (len(shape) == 4 and shape[0] != 1):
        return f"DecomposeMVN takes rank 3 or 4 with batch 1, this MVN has shape {shape}"
    axes = axes_of(op)
    if axes is None:
        return "DecomposeMVN needs constant axes"
    if len(axes) != len(shape) - 2 or axes[0] != 2:
        return (f"DecomposeMVN takes {len(shape) - 2} axis(es) starting at 2, this MVN normalizes over axes "
                f"{axes}")
    w = shape[-1]
    if w % _parts(w):
        return f"DecomposeMVN splits W = {w} in {_parts(w)} parts of at most {CONV_FILTER_MAX_SIZE}: W must divide"
    return ""


def _parts(w: int) -> int:
    parts = 1
    while w // parts > CONV_FILTER_MAX_SIZE:
        parts *= 2
    return parts


def _average(x2d: Any, rows: int, w: int, parts: int, weight: float, first: str, second: str) -> Any:
    """weight·Σ over each row of ``x2d`` [1, rows·W], broadcast over the row: the two 1×1 convolutions."""
    ops = _ops()
    width = w // parts
    rows_parts = ops.reshape(x2d, _i64(1, rows * parts, width), False)
    ncw = ops.transpose(rows_parts, _i64(0, 2, 1))  # channels = the values of one row part
    avg_w = ops.constant(np.full((8, width, 1), weight, dtype=np.float32))
    conv1 = _named(ops.convolution(ncw, avg_w, [1], [0], [0], [1]), first)  # [1, 8, rows·parts]
    per_row = ops.reshape(ops.transpose(conv1, _i64(0, 2, 1)), _i64(1, rows, 8 * parts), False)
    broadcast = np.zeros((w, 8 * parts, 1), dtype=np.float32)
    broadcast[:, ::8, 0] = 1.0  # the first of the 8 copies of every part, to every one of the W outputs
    conv2 = _named(ops.convolution(ops.transpose(per_row, _i64(0, 2, 1)), ops.constant(broadcast), [1], [0], [0],
                                   [1]), second)  # [1, W, rows]
    return ops.reshape(ops.transpose(conv2, _i64(0, 2, 1)), _i64(1, rows * w), False)


def decompose(op: Any, name: str) -> Any:
    """The output of DecomposeMVN's graph for ``op`` (a valid MVN, see ``problem``)."""
    ops = _ops()
    shape = [d.get_length() for d in op.get_output_partial_shape(0)]
    c, h, w = shape[-3:]
    rows, parts = c * h, _parts(w)
    attrs = op.get_attributes()
    x2d = ops.reshape(op.input_value(0), _i64(1, rows * w), False)
    neg_mean = _average(x2d, rows, w, parts, -1.0 / w, f"{name}_Avg1", f"{name}_Avg2")
    d = _named(ops.add(x2d, neg_mean), f"{name}_SubMean")
    out = d
    if attrs.get("normalize_variance", True):
        sq = _named(ops.multiply(d, d), f"{name}_SqrDiff")
        var = _average(sq, rows, w, parts, 1.0 / w, f"{name}_Avg3", f"{name}_Avg4")
        eps = ops.constant(np.full((1, rows * w), float(attrs.get("eps", 1e-9)), dtype=np.float32))
        var_eps = _named(ops.add(eps, var), f"{name}_AddEps")  # [I] unnamed in the plugin
        log = _named(ops.log(var_eps), f"{name}_LogVarEps")
        half = _named(ops.multiply(log, ops.constant(np.full((1, rows * w), -0.5, dtype=np.float32))),
                      f"{name}_LogInvStdev")
        inv = _named(ops.exp(half), f"{name}_InvStdev")
        out = _named(ops.multiply(d, inv), f"{name}_Output")
    return ops.reshape(out, _i64(*shape), False)


def _how(op: Any) -> str:
    w = op.get_output_partial_shape(0)[-1].get_length()
    mvn1 = "ConvertMVN1ToMVN6, then " if op.get_input_size() == 1 else ""
    parts = f" in {_parts(w)} parts" if _parts(w) > 1 else ""
    var = (", (d·d) averaged the same way, + eps, Log, × −0.5, Exp (PWLs) and d·(1/σ)"
           if op.get_attributes().get("normalize_variance", True) else "")
    return (f"{mvn1}decomposed (DecomposeMVN): −mean over W = {w}{parts} by two 1×1 convolutions, d = x − mean "
            f"(eltwise sum){var}")


def transform(model: Any) -> tuple[Any, list[Rewrite]]:
    """A clone of ``model`` with every MVN that DecomposeMVN takes decomposed as it does, and what was done to
    each MVN (one it does not take stays, with the reason)."""
    found = [op for op in model.get_ordered_ops() if op.get_type_name() in MVN_OPS]
    if not found:
        return model, []
    model = model.clone()
    rewrites: list[Rewrite] = []
    before = {op.get_friendly_name() for op in model.get_ordered_ops()}
    for n, op in enumerate([op for op in model.get_ordered_ops() if op.get_type_name() in MVN_OPS]):
        name = stable_name(op, n)
        source = f"{PIPELINE}; {DECOMPOSE}" + (f"; {MVN1}" if op.get_input_size() == 1 else "") + f" @{SOURCE_TAG}"
        why = problem(op)
        if why:
            if "dynamic" not in why:
                why += ("; the MVN is left to CommonOptimizations, whose MVN6Decomposition writes it with ReduceMean, "
                        "a layer the plugin does not have")
            rewrites.append(Rewrite("MVN", op.get_friendly_name(), "", source, why))
            continue
        how = _how(op)
        new = decompose(op, name)
        replace_output(op.output(0), new.output(0))
        new.set_friendly_name(name)  # the plugin keeps the MVN's name on the final reshape
        now = {o.get_friendly_name() for o in model.get_ordered_ops()}
        rewrites.append(Rewrite("MVN", name, how, source, nodes=frozenset(now - before) | {name}))
        before = now
    model.validate_nodes_and_infer_types()
    return model, rewrites
