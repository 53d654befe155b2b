"""The integer ranges of GNA data (int8/int16 weights and activations, int32 accumulators), defined once."""

from __future__ import annotations

import numpy as np

INT8_MIN, INT8_MAX = int(np.iinfo(np.int8).min), int(np.iinfo(np.int8).max)
INT16_MIN, INT16_MAX = int(np.iinfo(np.int16).min), int(np.iinfo(np.int16).max)
INT32_MIN, INT32_MAX = int(np.iinfo(np.int32).min), int(np.iinfo(np.int32).max)
INT16_BOUND = 32768.0  # the largest |value| of an int16 (−32768)
EXACT_F64 = 2.0**53  # every integer below it in magnitude is a float64: sums of int16 products stay exact there
