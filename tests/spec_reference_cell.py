"""A plain reading of how the GNA plugin computes one LSTM cell, for the differential tests
(``test_emulator_differential_cell.py``): the cell as ``LSTMCellDecomposition`` writes it, each piece computed by
the readings of ``spec_reference.py`` (int16 FC) and ``spec_reference_ops.py`` (identity, PWL, Clamp, eltwise).

Sources (``src/common/transformations/src/transformations/op_conversions/lstm_cell_decomposition.cpp``, the same
graph at 2022.3.0, 2023.0.0 and 2023.1.0; the GNA plugin registers it in ``gna_transformations_pipeline.cpp`` from
2023.0, in ``gna_plugin.cpp`` at 2022.3; plugin files under ``src/plugins/intel_gna/src`` @2023.1.0):

- ``Xt_W = X·Wᵀ``, ``Ht_R = H·Rᵀ``, ``XHB = Xt_W + (Ht_R + B)``; ``Ht_R + B`` becomes one FC with a bias
  (``ConvertOpSet1ToLegacy``'s bias fusion; ``gna_pass_manager.cpp`` ``FuseFullyConnectedWithEltwisePass``).
- ``XHB`` adds two 32-bit outputs: an identity on input 0 (``transformations/insert_identity_layer.cpp``
  ``MarkIdentityCandidates``, eltwise add), which then is the weighted 16-bit input, ``Ht_R`` the 32-bit bias
  (``gna_graph_compiler.cpp`` ``EltwisePrimitive``). A weights scale above 32767 lowers ``Ht_R``
  (``scale_factor_calc.cpp`` ``requantizeInput``), read as in ``test_eltwise_sum_of_fc_and_input_is_bit_exact``.
- Split into f, i, c, o; clip > 0: a Clamp per gate (a PWL, out 2048), and the gate activation after it gets a
  unit diagonal (``gna_pass_manager.cpp`` ``InsertDiagonalLayerPass``: an activation whose previous layer has no
  32-bit output; weight 1 at w_sf 16384/1, no bias). [I] The gates are read at their logical offsets of ``XHB``
  at ``XHB``'s scale: the plugin's handling of a Split of a 32-bit output (``InsertSplitAligningFilterPass`` for
  an offset off 64 bytes, ``InsertDiagonalLayerPass`` taking the Split as the activation's previous layer, the
  Split outputs' I16 precision in ``layer_quantizer.cpp``) is not read here.
- ``f·C``, ``i·c``, ``o·tanh(C')``: eltwise Prod of two 16-bit inputs (out sf = product). ``C' = f·C + i·c``: two
  32-bit outputs, an identity on ``f·C`` (input 0), ``i·c`` the bias. Sigmoid/Tanh: the float design of the
  release, out sf 2048 (``getActivationScale``).

Loops and Python integers in the pieces; no code shared with ``gnaexp.emulator`` (the float PWL designs come from
``gnaexp.emulator.activations.design``, passed in by the test).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import spec_reference as ref
import spec_reference_ops as rops

F32 = np.float32
DIAGONAL_W_SF = 16384.0  # ScaleFactorForQuantization(unit weights, MAX_VAL_2B_WEIGHT)


class Refused(Exception):
    """Where the emulator refuses on purpose (a second lowering, a weights scale above 32767 behind a
    layer that is not lowered); a sum weight that rounds to 0 is computed: the bias input alone."""


@dataclass
class Cell:
    out: np.ndarray
    out_sf: float
    sfs: dict[str, float] = field(default_factory=dict)  # out_sf by step name, as the plan names them
    lowered: bool = False  # Ht_R's output scale lowered for XHB


def _f32(a: float, b: float) -> float:
    return float(F32(F32(a) * F32(b)))


def activation(op: str, q: np.ndarray, in_sf: float, designs, release: str) -> tuple[np.ndarray, float]:
    """Sigmoid/Tanh on int32 (or int16) input ``q`` at ``in_sf``: ``make_pwl.cpp`` segments of the release's
    float design, out sf 2048."""
    out_sf = rops.activation_out_sf(op, in_sf)
    m, b, alpha = designs[op]
    return rops.pwl_eval(rops.designed_segments(m, b, alpha, in_sf, out_sf, release), q), out_sf


def identity(q0: np.ndarray, sf0: float, release: str) -> tuple[np.ndarray, float]:
    """The identity inserted on input 0 of a sum of two 32-bit outputs: (its int16 output, its sf)."""
    id_sf = rops.identity_out_sf(sf0)
    ident = rops.pwl_eval(rops.identity_segments(sf0, id_sf, release), q0)
    return ident, id_sf


def lstm_cell(x, h, c, w, r, b, sfs: tuple[float, float, float], clip: float, designs, release: str) -> Cell:
    """H' of one LSTM cell, in integers, with the scale factor of every step."""
    sf_x, sf_h, sf_c = sfs
    n = r.shape[1]
    steps: dict[str, float] = {}
    w_sf, xw_sf = ref.weight_scales(w, None, sf_x, conv_in_channels=None)
    xw = ref.fc(ref.quantize_input(x, sf_x), ref.quantize_weights(w, w_sf), np.zeros(w.shape[0], np.int64))
    r_sf, hr_sf = ref.weight_scales(r, b, sf_h, conv_in_channels=None)
    ident, id_sf = identity(xw, float(xw_sf), release)
    weight, scale = rops.sum_weight(float(hr_sf), id_sf)
    lowered = rops.needs_requantize(scale, release)
    if lowered:  # requantizeInput on the FC behind the bias input
        hr_sf = F32(F32(id_sf) * F32(32767))
        r_sf = F32(hr_sf / F32(sf_h))
        hr_sf = F32(r_sf * F32(sf_h))
        weight, scale = rops.sum_weight(float(hr_sf), id_sf)
        if rops.needs_requantize(scale, release):
            raise Refused("XHB lowered twice")
    hr = ref.fc(ref.quantize_input(h, sf_h), ref.quantize_weights(r, r_sf), ref.quantize_bias(b, hr_sf))
    xhb = rops.diagonal(ident, weight, hr)
    xhb_sf = float(hr_sf)
    steps.update({"Xt_W": float(xw_sf), "Ht_R": float(hr_sf), "Xt_W/identity": id_sf, "XHB": xhb_sf})
    gates = {}
    for k, (g, op) in enumerate(zip("fico", ("Sigmoid", "Sigmoid", "Tanh", "Sigmoid"))):
        q, q_sf = xhb[k * n:(k + 1) * n], xhb_sf
        if clip > 0:
            clamp_sf = rops.activation_out_sf("Clamp", q_sf)
            q = rops.pwl_eval(rops.clamp_segments(q_sf, clamp_sf, -clip, clip, release), q)
            q, q_sf = rops.diagonal(q, int(DIAGONAL_W_SF)), _f32(DIAGONAL_W_SF, clamp_sf)
            steps[f"{g}/clamp"] = clamp_sf
            steps[f"{g}/SyntheticScaleShift"] = q_sf
        gates[g], steps[g] = activation(op, q, q_sf, designs, release)
    f_c = rops.diagonal(ref.quantize_input(c, sf_c), gates["f"])
    steps["f_C"] = fc_sf = _f32(steps["f"], sf_c)
    i_c = rops.diagonal(gates["c"], gates["i"])
    steps["i_c"] = ic_sf = _f32(steps["i"], steps["c"])
    ident, id_sf = identity(f_c, fc_sf, release)
    weight, scale = rops.sum_weight(ic_sf, id_sf)
    if rops.needs_requantize(scale, release):
        raise Refused("C' sum outside what this reading covers")  # 2048²/2049 never is
    new_c = rops.diagonal(ident, weight, i_c)
    steps.update({"f_C/identity": id_sf, "C": ic_sf})
    tanh_c, steps["h_C"] = activation("Tanh", new_c, ic_sf, designs, release)
    out = rops.diagonal(tanh_c, gates["o"])
    steps["H"] = out_sf = _f32(steps["o"], steps["h_C"])
    return Cell(out, out_sf, steps, lowered)
