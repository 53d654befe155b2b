"""A plain reading of how the GNA plugin computes one GRU cell, for the differential tests
(``test_emulator_differential_gru.py``): the cell as ``GRUCellDecomposition`` writes it, each piece computed by the
readings of ``spec_reference.py`` (int16 FC), ``spec_reference_ops.py`` (identity, PWL, Clamp, eltwise) and
``spec_reference_cell.py`` (activation, identity, the unit diagonal after a Clamp).

Sources (``src/common/transformations/src/transformations/op_conversions/gru_cell_decomposition.cpp``, the same
graph at 2022.3.0, 2023.0.0 and 2023.1.0; the GNA plugin registers it in ``gna_transformations_pipeline.cpp``;
the legacy conversions under ``src/plugins/intel_gna/legacy/src/transformations/convert_opset1_to_legacy``, plugin
files under ``src/plugins/intel_gna/src`` @2023.1.0):

- ``Xt_W = X·Wᵀ``, ``Ht_R = H·Rᵀ``, each split in z, r, h; no bias is fused into either FC (a Split stands between
  the MatMul and the Add: ``fc_bias_fusion.cpp``, ``gna_pass_manager.cpp`` ``FuseFullyConnectedWithEltwisePass``
  skip only Reshape/Permute). [I] A split of a 32-bit FC output is read as crops at that output's scale (as in
  ``spec_reference_cell.py``: ``InsertDiagonalLayerPass`` and the Split's I16 precision are not read here).
- ``Hz + Bz``, ``Hr + Br`` (and ``Hh + Rbh``, ``r·(…) + Wbh`` with linear_before_reset): an Add of a per-element
  constant on rank-2 data stays an Eltwise with a Const input (``convert_mul_or_add_finally.cpp``:
  ``check_constant`` gives SCALE_SHIFT, the output rank is below 4). The Const is 16-bit at 32767/max|c|
  (``scale_factor_calc.cpp`` ``ScaleFactorPerLayer``, type "Const"), SaturationCast<int16>(c·sf), a float product
  truncated (``layer_quantizer.cpp`` ``FP32ToPrecisionBlob``); no identity on the 32-bit input, which is the
  bias (``insert_identity_layer.cpp`` ``MarkIdentityCandidates``: the Const has no 32-bit output). A weights
  scale above 32767 lowers ``Ht_R`` [I: through the crop] (``requantizeInput``), also for ``z_sum``/``r_sum``
  behind ``Hz + Bz`` (``requantizeInput`` goes through an eltwise sum into its 32-bit input); a Prod behind it
  is not lowered.
- ``z = σ(Xz + (Hz + Bz))``, ``r`` likewise: two 32-bit inputs, an identity on ``Xt_W`` (input 0; inserted after
  the FC, before the Split: ``insert_identity_layer_after`` skips precision-agnostic ops), the other the bias.
  clip > 0: a Clamp (PWL, out 2048) and a unit diagonal before the activation, as in the LSTM reading.
- ``ĥ``: ``(r·H)·Rhᵀ + Bh``: Prod of two 16-bit inputs, an identity on it (an FC reads 16-bit data), an FC with
  the bias fused (``FullyConnectedBiasFusion``); or with linear_before_reset ``r·(Hh + Rbh) + Wbh``: an identity
  on the 32-bit ``Hh + Rbh`` (input 1 of the Prod). Then ``Xh + (…)``: identity on ``Xt_W``, the rest the bias;
  above 32767 the FC behind it is lowered (the LSTM reading's ``requantizeInput``).
- ``1 − z``: ``ConvertSubtract`` gives ``1 + z·(−1)``, ``ConvertMulAddToScaleShiftOrPower`` a PowerIE (power 1,
  scale −1, shift 1: scalar constants), an affine Power layer (``pwl_approximation.cpp`` ``pwl_search_power``
  returns false for exponent 1): w_sf = 16384/|scale|, dst = w_sf·src (``ScaleFactorPerLayer``, isPower and not an
  activation), weight FloatToInt16(min(w_sf·scale, 32767)), offset FloatToInt32(min(dst·shift, INT32_MAX))
  (``gna_graph_compiler.cpp`` ``PowerPrimitive``). 32-bit: an identity before the Prod ``(1 − z)·ĥ``.
- ``H' = (1 − z)·ĥ + z·H``: two Prods, an identity on input 0 of their sum; ``z·H`` the bias.

Loops and Python integers in the pieces; no code shared with ``gnaexp.emulator``.
"""

from __future__ import annotations

import numpy as np

import spec_reference as ref
import spec_reference_cell as rcell
import spec_reference_ops as rops
from spec_reference_cell import Cell, Refused, _f32

F32 = np.float32
FLT_MIN, FLT_MAX = float(np.finfo(F32).tiny), float(np.finfo(F32).max)
MAX_VAL_2B_WEIGHT = 16384.0


def const_layer(c: np.ndarray) -> tuple[np.ndarray, float]:
    """A Const layer without statistics: max/min over the values from FLT_MIN/FLT_MAX (``numeric_limits<float>``
    ``min()``/``max()``), sf = float(32767)/max(|max|, |min|), 1.0 when that is 0 or ∞; values
    SaturationCast<int16>(float(c·sf)): clamped, else truncated toward 0."""
    max_val, min_val = FLT_MIN, FLT_MAX
    for v in np.asarray(c, F32):
        max_val = max(max_val, float(v))
        min_val = min(min_val, float(v))
    abs_val = max(abs(max_val), abs(min_val))
    with np.errstate(over="ignore"):  # all zeros: abs_val is FLT_MIN, the quotient ∞
        sf = F32(F32(32767.0) / F32(abs_val))
    if np.isinf(sf):
        sf = F32(1.0)
    q = np.zeros(len(c), dtype=np.int64)
    for i, v in enumerate(np.asarray(c, F32)):
        p = F32(v * sf)
        q[i] = 32767 if p > 32767 else -32768 if p < -32768 else int(p)
    return q, float(sf)


def const_sum(q32: np.ndarray, sf32: float, c: np.ndarray, release: str) -> np.ndarray:
    """Eltwise Sum of a 32-bit input (the bias) and a Const (the 16-bit weighted input), out sf = sf32. A weight
    of 0 (weights scale below 0.5) leaves the bias input alone, as the plugin computes it."""
    qc, sf_c = const_layer(c)
    weight, scale = rops.sum_weight(sf32, sf_c)
    if rops.needs_requantize(scale, release):
        raise Refused("a bias sum outside what this reading covers")  # above 32767 behind a Prod
    return rops.diagonal(qc, weight, q32)


def sum32(q0: np.ndarray, sf0: float, q1: np.ndarray, sf1: float, release: str) -> tuple[np.ndarray, float]:
    """Sum of two 32-bit outputs: identity on input 0, input 1 the bias (out sf1); (the sum, the identity's sf).
    Refused where the emulator refuses: a weights scale above 32767 (input 1 is here a Prod, which the emulator
    does not lower). A weight of 0 leaves input 1 alone."""
    ident, id_sf = rcell.identity(q0, sf0, release)
    weight, scale = rops.sum_weight(sf1, id_sf)
    if rops.needs_requantize(scale, release):
        raise Refused("a sum outside what this reading covers")
    return rops.diagonal(ident, weight, q1), id_sf


def lowered_fc_sf(in_sf: float, wanted: float) -> tuple[F32, F32]:
    """``requantizeInput`` on an FC: dst = wanted, w_sf = dst/src; the product kept as the emulator's plan has it."""
    w_sf = F32(F32(wanted) / F32(in_sf))
    return w_sf, F32(w_sf * F32(in_sf))


def _ht_r_scale(r, sf_h: float, visits: list[float], release: str) -> tuple[F32, F32, bool]:
    """``Ht_R``'s (w_sf, out sf), lowered while a sum at its scale has a weights scale above 32767. ``visits``:
    the scales of the weighted inputs of the sums at Ht_R's scale, in the order the scale factor pass visits
    them; each lowering restarts the pass. The bias input of such a sum is a crop of Ht_R or a sum whose bias
    is one (``Hz + Bz``): ``requantizeInput`` goes through an eltwise sum into its 32-bit input, the wanted
    scale times that input's scale over the sum's (equal here), and on through the crop to the FC."""
    r_sf, hr_sf = ref.weight_scales(r, None, sf_h, conv_in_channels=None)
    lowered_to = None
    while True:
        for sf_c in visits:
            _, scale = rops.sum_weight(float(hr_sf), sf_c)
            if rops.needs_requantize(scale, release):
                wanted = F32(F32(sf_c) * F32(32767.0))  # (× Hz_B's bias scale over its own: 1)
                if wanted == lowered_to:
                    raise Refused("Ht_R lowered twice to the same scale")
                lowered_to = wanted
                r_sf, hr_sf = lowered_fc_sf(sf_h, wanted)
                break
        else:
            return r_sf, hr_sf, lowered_to is not None


def power_one_minus(q: np.ndarray, in_sf: float, release: str) -> tuple[np.ndarray, float]:
    """``1 − z`` as the affine Power layer (power 1, scale −1, shift 1)."""
    scale, shift = -1.0, 1.0
    w_sf = F32(F32(MAX_VAL_2B_WEIGHT) / F32(abs(scale)))
    dst = F32(w_sf * F32(in_sf))
    # FloatToInt16/32 of a float (FLOAT_TO_INT16/32 of the same float expression at 2022.3): exact integers here
    weight = rops.narrow(rops.to_int_f32(min(F32(w_sf * F32(scale)), F32(32767.0))), 16)
    offset = rops.narrow(rops.to_int_f32(min(F32(dst * F32(shift)), F32(rops.INT32_MAX))), 32)
    return rops.diagonal(q, weight, offset), float(dst)


def _gate(q: np.ndarray, q_sf: float, op: str, clip: float, name: str, steps: dict, designs, release: str):
    """Clamp (clip > 0) and the unit diagonal after it, then the activation."""
    if clip > 0:
        clamp_sf = rops.activation_out_sf("Clamp", q_sf)
        q = rops.pwl_eval(rops.clamp_segments(q_sf, clamp_sf, -clip, clip, release), q)
        q, q_sf = rops.diagonal(q, int(rcell.DIAGONAL_W_SF)), _f32(rcell.DIAGONAL_W_SF, clamp_sf)
        steps[f"{name}/SyntheticScaleShift"] = q_sf
    out, steps[name] = rcell.activation(op, q, q_sf, designs, release)
    return out


def gru_cell(x, h, w, r, b, sfs: tuple[float, float], clip: float, linear_before_reset: bool, designs,
             release: str) -> Cell:
    """H' of one GRU cell, in integers, with the scale factor of every step."""
    sf_x, sf_h = sfs
    n = r.shape[1]
    bz, br, bh = b[:n], b[n:2 * n], b[2 * n:3 * n]
    steps: dict[str, float] = {}
    qh = ref.quantize_input(h, sf_h)
    w_sf, xw_sf = ref.weight_scales(w, None, sf_x, conv_in_channels=None)
    xw = ref.fc(ref.quantize_input(x, sf_x), ref.quantize_weights(w, w_sf), np.zeros(w.shape[0], np.int64))
    x_id, x_id_sf = rcell.identity(xw, float(xw_sf), release)
    # the sums at Ht_R's scale: Hz + Bz then z_sum (or, Bz all 0 and that Add dropped by ConvertMulOrAddFinally,
    # z_sum alone), Hr + Br and r_sum likewise, Hh + Rbh
    visits = []
    for c in (bz, br):
        visits += [const_layer(c)[1], x_id_sf] if np.any(c) else [x_id_sf]
    if linear_before_reset and np.any(b[3 * n:]):
        visits.append(const_layer(b[3 * n:])[1])
    r_sf, hr_sf, lowered = _ht_r_scale(r, sf_h, visits, release)
    hr = ref.fc(qh, ref.quantize_weights(r, r_sf), np.zeros(r.shape[0], np.int64))
    steps.update({"Xt_W": float(xw_sf), "Ht_R": float(hr_sf), "Xt_W/identity": x_id_sf})

    def with_bias(q32, sf32, c, name):  # an Add of zeros is no layer
        if np.any(c):
            steps[name], steps[f"{name}/const"] = sf32, const_layer(c)[1]
            return const_sum(q32, sf32, c, release)
        return q32

    gates = {}
    for k, (g, c) in enumerate((("z", bz), ("r", br))):
        hb = with_bias(hr[k * n:(k + 1) * n], float(hr_sf), c, f"H{g}_B")
        weight, scale = rops.sum_weight(float(hr_sf), x_id_sf)
        if rops.needs_requantize(scale, release):  # Ht_R was lowered above: only the loop is left
            raise Refused(f"{g}_sum outside what this reading covers")
        q = rops.diagonal(x_id[k * n:(k + 1) * n], weight, hb)
        steps[f"{g}_sum"] = float(hr_sf)
        gates[g] = _gate(q, float(hr_sf), "Sigmoid", clip, g, steps, designs, release)
    xh = x_id[2 * n:]
    if linear_before_reset:
        hh = with_bias(hr[2 * n:], float(hr_sf), b[3 * n:], "Hh_Rb")
        hh_id, hh_id_sf = rcell.identity(hh, float(hr_sf), release)
        steps["Hh_Rb/identity" if np.any(b[3 * n:]) else "Ht_R/identity"] = hh_id_sf  # named after its layer
        r_hh = rops.diagonal(gates["r"], hh_id)
        steps["r_Hh"] = r_hh_sf = _f32(steps["r"], hh_id_sf)
        inner = with_bias(r_hh, r_hh_sf, bh, "r_Hh_Wb")
        weight, scale = rops.sum_weight(r_hh_sf, x_id_sf)
        if rops.needs_requantize(scale, release):
            raise Refused("h_sum outside what this reading covers")  # its bias input is an eltwise
        pre, pre_sf = rops.diagonal(xh, weight, inner), r_hh_sf
    else:
        r_h = rops.diagonal(qh, gates["r"])  # Multiply(r_t, H_t): H the diagonal weights (the product commutes)
        steps["r_H"] = r_h_sf = _f32(steps["r"], sf_h)
        rh_id, rh_id_sf = rcell.identity(r_h, r_h_sf, release)
        steps["r_H/identity"] = rh_id_sf
        rh = r[2 * n:]
        rh_w_sf, rh_sf = ref.weight_scales(rh, bh, rh_id_sf, conv_in_channels=None)
        weight, scale = rops.sum_weight(float(rh_sf), x_id_sf)
        if rops.needs_requantize(scale, release):  # requantizeInput on the FC behind the bias input
            rh_w_sf, rh_sf = lowered_fc_sf(rh_id_sf, float(F32(F32(x_id_sf) * F32(32767.0))))
            weight, scale = rops.sum_weight(float(rh_sf), x_id_sf)
            if rops.needs_requantize(scale, release):
                raise Refused("rH_Rh lowered twice")
            lowered = True
        mul_h = ref.fc(rh_id, ref.quantize_weights(rh, rh_w_sf), ref.quantize_bias(bh, rh_sf))
        steps["rH_Rh"] = pre_sf = float(rh_sf)
        pre = rops.diagonal(xh, weight, mul_h)
    steps["h_sum"] = pre_sf
    h_t = _gate(pre, pre_sf, "Tanh", clip, "h", steps, designs, release)
    omz, steps["1-z"] = power_one_minus(gates["z"], steps["z"], release)
    omz_id, omz_id_sf = rcell.identity(omz, steps["1-z"], release)
    steps["1-z/identity"] = omz_id_sf
    mul_1 = rops.diagonal(omz_id, h_t)
    steps["(1-z)_h"] = mul_1_sf = _f32(omz_id_sf, steps["h"])
    mul_2 = rops.diagonal(gates["z"], qh)
    steps["z_H"] = mul_2_sf = _f32(steps["z"], sf_h)
    out, steps["(1-z)_h/identity"] = sum32(mul_1, mul_1_sf, mul_2, mul_2_sf, release)
    steps["H"] = mul_2_sf
    return Cell(out, mul_2_sf, steps, lowered)
