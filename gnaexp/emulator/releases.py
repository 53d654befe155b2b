"""The GNA plugin releases the emulator follows, and what each computes differently (docs/gna-rules.md §8).

Users run one release, and the releases round differently: the same network gets PWL tables that differ by ±1 in
a slope or yBase, or by a whole segment. Every part of the emulator that builds a table or a weight takes a
``PluginRelease`` and asks it how this release rounds at that place.

The differences, read from the plugin sources at each tag (``src/plugins/intel_gna/src``):

- ``FloatToInt*`` rounding: 2022.3 rounds with the ``FLOAT_TO_INT*`` macros of ``common/numerical_utils.hpp``
  (L13-16), whose argument stays a double (``(a) + 0.5f`` promotes to double); 2023.0 replaced them by functions
  taking a ``float`` (L15-30), so the value is rounded to float32 first; 2023.1 added ``DoubleToInt*`` (L31-42)
  and used them at every place listed in ``FLOAT32_SITES``. ``SITE_LINES`` gives each place's file and lines.
- ``pivot_search`` (``transformations/pwl_approximation.cpp``): 2022.3 treats two equal maximum errors with
  ``==`` and keeps its "same error" flag after a worse step (L148-160); 2023.0 compares with ``AreFpEq`` (double
  epsilon) and clears the flag (L152-163).
- ``fp32eq`` (2022.3, default accuracy 1e-5, ``numerical_utils.hpp`` L25) against ``AreFpEq`` (2023.0+, the type's
  epsilon, L40 / L52): the output scale factor found by ``adjustScaleFactor`` replaces the computed one only when
  they differ by more than that (``frontend/scale_factor_calc.cpp`` L357 @2022.3.0, L359 @2023.0.0/2023.1.0).
- int8 weights: 2022.3 divides by the row's computed channel multiplier, which can be 0 for a row of small
  weights (``frontend/quantization.cpp`` L145: every nonzero weight of that row saturates); 2023.0+ divides by the
  stored multiplier, never 0 (L153 @2023.0.0, L155 @2023.1.0).

2023.2 and 2023.3 compute as 2023.1: the files above are unchanged from 2023.1.0 to the last commit before the
plugin's removal (master 1fd3399cdf, 2023-12-21) apart from signatures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gnaexp.core.gna_settings import check_plugin_release, DEFAULT_PLUGIN_RELEASE, PLUGIN_RELEASES

# Places where a release rounds a double to an integer; (file, lines at 2022.3.0 / 2023.0.0 / 2023.1.0).
SITE_LINES = {
    "pwl_design": ("backend/make_pwl.cpp", "cast_check_overflow: L303 / L316 / L317 (yBase and slope of a "
                   "designed PWL)"),
    "identity_slope": ("backend/pwl_tools.cpp", "ComputeSlopeForSegment: L31"),
    "identity_borders": ("backend/pwl_border_values_counter_identity.cpp",
                         "CreateBorderValues: L43-49 / L44-50 / L44-50"),
    "relu": ("backend/make_pwl.cpp", "kActRelu/kActLeakyRelu x_lower, y_lower, slopes: L134-150 / L140-157 / "
             "L140-157"),
    "clamp": ("backend/make_pwl.cpp", "kActKaldiLstmClipping borders and slope: L208-233 / L220-245 / L221-246"),
    "best_output_sf": ("frontend/scale_factor_calc.cpp", "selectBestOutputScaleFactors: L95 / L96 / L96"),
    "leaky_ybase": ("backend/make_pwl.cpp", "leaky ReLU segment 0 yBase: L138 / L145 / L145 (y_lower × the "
                    "float negative_slope is a float product in every release)"),
}


@dataclass(frozen=True)
class PluginRelease:
    name: str  # as users name it: "2023.3"
    source_tag: str  # the tag whose sources define it
    float32_sites: frozenset[str]  # SITE_LINES places that round through float32
    pivot_fp_eq: bool  # pivot_search compares errors with AreFpEq and clears its flag (2023.0+)
    sf_equal_accuracy: float  # adjustScaleFactor keeps the old sf when the new one is this close (relative)
    int8_zero_multiplier_saturates: bool  # 2022.3: a row whose multiplier computes to 0 divides by 0

    def round_to_int(self, value: float, site: str) -> int:
        """``FloatToInt*`` / ``DoubleToInt*`` at ``site``: ±0.5 then truncate, in float32 where this release
        rounds through float, else in double. The integer is not narrowed (callers wrap or clamp)."""
        if site in self.float32_sites:
            f = np.float32(value)
            half = np.float32(-0.5) if f < 0 else np.float32(0.5)
            return int(np.float32(f + half))
        return int(value - 0.5) if value < 0 else int(value + 0.5)

    def to_json(self) -> dict[str, object]:
        return {"plugin_release": self.name, "source_tag": self.source_tag,
                "rounds_through_float32": sorted(self.float32_sites)}


_ALL_SITES = frozenset(SITE_LINES)
_FLOAT_EVERYWHERE = frozenset({"leaky_ybase"})  # an int16 × float product: float arithmetic in every release
_FLOAT_EPS = float(np.finfo(np.float32).eps)


def _release(name: str, tag: str) -> PluginRelease:
    if tag == "2022.3.0":
        return PluginRelease(name, tag, _FLOAT_EVERYWHERE, pivot_fp_eq=False, sf_equal_accuracy=1e-5,
                             int8_zero_multiplier_saturates=True)
    return PluginRelease(name, tag, _ALL_SITES if tag == "2023.0.0" else _FLOAT_EVERYWHERE, pivot_fp_eq=True,
                         sf_equal_accuracy=_FLOAT_EPS, int8_zero_multiplier_saturates=False)


# 2023.2 and 2023.3 compute as 2023.1 (the module docstring says why)
RELEASES = {name: _release(name, {"2022.3": "2022.3.0", "2023.0": "2023.0.0"}.get(name, "2023.1.0"))
            for name in PLUGIN_RELEASES}
DEFAULT_RELEASE = DEFAULT_PLUGIN_RELEASE
DEFAULT = RELEASES[DEFAULT_RELEASE]


def get(name: "str | PluginRelease | None") -> PluginRelease:
    """The release named ``name`` (``gna_settings.check_plugin_release``); None → the default."""
    if isinstance(name, PluginRelease):
        return name
    return DEFAULT if name is None else RELEASES[check_plugin_release(name)]
