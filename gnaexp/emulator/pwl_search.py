"""The plugin's PWL design search, in its own floating-point order (docs/gna-rules.md §3.8).

[S: src/plugins/intel_gna/src/transformations/pwl_approximation.hpp ``details::Function`` and
pwl_approximation.cpp ``pivot_search``, ``calculate_error_pct``, ``pwl_search`` @2022.3.0/2023.0.0/2023.1.0.]
Tables must equal the plugin's bit for bit, not only approximate the function: a pivot that lands one ulp away
can move a slope past the int16 limit and change its segment's shift. So every value here is computed as the
plugin writes it, scalar by scalar, in the same order, with the C library's functions (``math`` in compiled
code calls libm, as the plugin does; NumPy's vectorized tanh/exp/pow differ from libm in the last bit):

- f and f' as ``Function<T>`` writes them: Sigmoid 0.5·(1 + tanh(x/2)) and f·(1 − f) (f evaluated twice),
  Tanh 1 − tanh·tanh, SoftSign 1/((1+|x|)·(1+|x|)), Exp, Log 1/x, Power pow(x·1 + 0, e) and
  e·1·pow(0 + x·1, e − 1) (scale 1, shift 0);
- the pivot iteration keeps every step's t, α and ε and goes back a step (Δ halved) when the largest error grows,
  or when it repeats twice — compared with ``AreFpEq`` (double epsilon) since 2023.0, with ``==`` in 2022.3,
  which also keeps its "repeated" flag after a step back (``fp_eq``);
- the error of a design is 100·|offset| / (max f − min f) over 500 samples lower + i·Δ, Δ = (upper−lower)/501.

Loops run compiled (numba): a full search evaluates f some 10^8 times across the segment counts tried.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from gnaexp.core.errors import BadInput

OPS = ("Sigmoid", "Tanh", "SoftSign", "Exp", "Log", "Power")
THRESHOLD = 0.1
SAMPLES = 500
DOUBLE_EPS = float(np.finfo(np.float64).eps)
# Error codes of the compiled search, and the plugin's messages for them (std::runtime_error texts)
OUT_OF_RANGE, NO_CONVERGENCE = 1, 2
MESSAGES = {OUT_OF_RANGE: "The value is out of range.", NO_CONVERGENCE: "Failed to converge in pivot_search!"}


@njit(cache=True)
def _value(op, e, x):  # pragma: no cover - compiled
    if op == 0:
        return 0.5 * (1.0 + math.tanh(x / 2.0))
    if op == 1:
        return math.tanh(x)
    if op == 2:
        return x / (1.0 + abs(x))
    if op == 3:
        return math.exp(x)
    if op == 4:
        return math.log(x)
    return math.pow(x * 1.0 + 0.0, e)


@njit(cache=True)
def _derivative(op, e, x):  # pragma: no cover - compiled
    if op == 0:
        return _value(0, e, x) * (1.0 - _value(0, e, x))
    if op == 1:
        return 1.0 - math.tanh(x) * math.tanh(x)
    if op == 2:
        return 1.0 / ((1.0 + abs(x)) * (1.0 + abs(x)))
    if op == 3:
        return math.exp(x)
    if op == 4:
        return 1.0 / x
    return e * 1.0 * math.pow(0.0 + x * 1.0, e - 1.0)


@njit(cache=True)
def _fp_eq(a, b):  # pragma: no cover - compiled
    return abs(a - b) <= 2.220446049250313e-16 * min(abs(a), abs(b))


@njit(cache=True)
def pivot_search(op, e, n, a0, an, negative, max_iterations, fp_eq, out):  # pragma: no cover - compiled
    """n segments on [a0, an]: out[i] = (m, b, α, β) for i < n and (0, 0, α_N, β_N) at n. Returns
    (error code, final offset); code 0 when it converged."""
    sgn = -1.0 if negative else 1.0
    rows = max_iterations + 2
    t = np.empty((rows, n))
    alpha = np.empty((rows, n + 1))
    eps = np.empty((rows, n + 1))
    for i in range(n):
        t[0, i] = a0 + (float(i + 1) / float(n + 1)) * (an - a0)
    j = 0
    delta = 1.0
    same = False
    max_eps = 0.0
    while True:
        alpha[j, 0] = a0
        for i in range(1, n):
            alpha[j, i] = ((_value(op, e, t[j, i - 1]) - _value(op, e, t[j, i])
                            + _derivative(op, e, t[j, i]) * t[j, i]
                            - _derivative(op, e, t[j, i - 1]) * t[j, i - 1])
                           / (_derivative(op, e, t[j, i]) - _derivative(op, e, t[j, i - 1])))
        alpha[j, n] = an
        for i in range(n):
            eps[j, i] = sgn * (_derivative(op, e, t[j, i]) * (alpha[j, i] - t[j, i]) + _value(op, e, t[j, i])
                               - _value(op, e, alpha[j, i]))
            if math.isnan(eps[j, i]):
                return OUT_OF_RANGE, 0.0
        eps[j, n] = sgn * (_derivative(op, e, t[j, n - 1]) * (alpha[j, n] - t[j, n - 1]) + _value(op, e, t[j, n - 1])
                           - _value(op, e, alpha[j, n]))
        if math.isnan(eps[j, n]):
            return OUT_OF_RANGE, 0.0
        prev = max_eps
        max_eps = abs(eps[j, 0])
        min_eps = abs(eps[j, 0])
        for i in range(1, n + 1):
            if abs(eps[j, i]) > max_eps:
                max_eps = abs(eps[j, i])
            if abs(eps[j, i]) < min_eps:
                min_eps = abs(eps[j, i])
        if j == max_iterations or max_eps - min_eps < THRESHOLD * min_eps:
            final = (max_eps + min_eps) / 4.0
            for i in range(n):
                a = alpha[j, i]
                beta = sgn * _derivative(op, e, t[j, i]) * (a - t[j, i]) + sgn * _value(op, e, t[j, i]) - final
                m = sgn * _derivative(op, e, t[j, i])
                out[i, 0], out[i, 1], out[i, 2], out[i, 3] = m, beta - m * a, a, beta
            out[n, 0], out[n, 1], out[n, 2] = 0.0, 0.0, alpha[j, n]
            out[n, 3] = (sgn * _derivative(op, e, t[j, n - 1]) * (alpha[j, n] - t[j, n - 1])
                         + sgn * _value(op, e, t[j, n - 1]) - final)
            if j == max_iterations:
                return NO_CONVERGENCE, final
            return 0, final
        if j > 0:
            if max_eps > prev:
                j -= 1
                delta = delta / 2
                if fp_eq:
                    same = False
            elif (_fp_eq(max_eps, prev) if fp_eq else max_eps == prev):
                if not same:
                    same = True
                else:
                    j -= 1
                    delta = delta / 2
                    same = False
        for i in range(n):
            d = delta * (eps[j, i + 1] - eps[j, i]) / ((eps[j, i + 1] / (alpha[j, i + 1] - t[j, i]))
                                                      + (eps[j, i] / (t[j, i] - alpha[j, i])))
            t[j + 1, i] = t[j, i] + d
        j += 1


@njit(cache=True)
def error_pct(op, e, lower, upper, offset):  # pragma: no cover - compiled
    """calculate_error_pct: the offset as a share of the function's range over the samples."""
    delta = (upper - lower) / (SAMPLES + 1)
    if delta < 0:
        return 0.0
    lo = _value(op, e, lower)
    hi = lo
    for i in range(SAMPLES):
        v = _value(op, e, lower + i * delta)
        if v > hi:
            hi = v
        if v < lo:
            lo = v
    return 100.0 * abs(offset) / (hi - lo)


def search(op: str, exponent: float, lower: float, upper: float, negative: bool, allowed_pct: float,
           max_iterations: int, max_segments: int, fp_eq: bool) -> np.ndarray:
    """One half's segments (rows m, b, α, β; the last row the end point) with the fewest segments whose error is
    within ``allowed_pct`` (``pwl_search`` without the split). ValueError with the plugin's message on failure."""
    code = OPS.index(op)
    n = 0
    while True:
        n += 1
        out = np.empty((n + 1, 4))
        err, final = pivot_search(code, float(exponent), n, float(lower), float(upper), negative, max_iterations,
                                  fp_eq, out)
        if err:
            raise BadInput(MESSAGES[err])
        if not (n < max_segments and allowed_pct < error_pct(code, float(exponent), float(lower), float(upper),
                                                              final)):
            break
    if n >= max_segments:
        raise BadInput("Failed to converge in pwl_search!")
    return out
