"""Figures of a per-layer comparison (``gnaexp layers``): SQNR along the graph, and each network output overlaid.

Built from arrays and ``LayerComparison`` rows only, without pyplot (``plots.figure``), in the kit's colours and
text sizes, so that they read as the other reports' figures do.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from gnaexp.layers.results import LayerComparison, LayerDiff
from gnaexp.present import plots

MAX_NAMED_TICKS = 40  # beyond this many layers, every k-th is named: the names would overlap
OVERLAY_VALUES = 512  # an output that is not (1, C, T)-like is drawn as its first values, flattened
OVERLAY_CHANNELS = 2
FUSED_COLOR = "0.55"
DIVERGING_COLOR = "#D55E00"


def short_name(layer: str, width: int = 26) -> str:
    """The part of a layer name that tells it apart in a tick label: its last path segment, cut from the left."""
    tail = layer.rstrip("/").rsplit("/", 1)[-1] or layer
    return tail if len(tail) <= width else "…" + tail[-(width - 1):]


def _db(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _ceiling(rows: Sequence[LayerDiff], threshold: float) -> float:
    """Where an exact match (+inf dB) is drawn: above every finite value and the threshold."""
    finite = [v for r in rows for v in (_db(r.sqnr_db), _db(r.local_sqnr_db)) if math.isfinite(v)]
    return math.ceil((max(finite + [threshold]) + 10.0) / 10.0) * 10.0


def _series(rows: Sequence[LayerDiff], attr: str, ceiling: float) -> tuple[np.ndarray, np.ndarray]:
    """(values with +inf at the ceiling and gaps as NaN, a mask of the +inf points)."""
    values = np.array([_db(getattr(r, attr)) if r.status == "compared" else math.nan for r in rows])
    exact = np.isposinf(values)
    return np.where(exact, ceiling, np.where(np.isneginf(values), np.nan, values)), exact


def sqnr_along_graph(result: LayerComparison, backends: Sequence[str] | None = None,
                     labels: Mapping[str, str] | None = None) -> Figure:
    """One panel per backend under test: accumulated and local SQNR per layer along the reference's topological
    order (x: layer index and name), the backend's threshold, the first diverging layer marked; layers the backend
    fused away (or lacks) marked at the foot of the panel. An exact match (+inf dB) is drawn at the top, as ▲."""
    from matplotlib.ticker import FixedLocator, NullLocator

    backends = list(backends if backends is not None else result.backends)
    labels = dict(labels or {})
    order = [r.layer for r in result.rows_of(backends[0]) if r.status != "inserted"] if backends else []
    n = max(len(order), 1)
    names = [f"{i} {short_name(layer)}" for i, layer in enumerate(order)]
    step = max(1, math.ceil(len(order) / MAX_NAMED_TICKS))
    width = min(max(7.5, 0.32 * len(order) + 2.5), 13.0)
    tick_room = 0.075 * max((len(s) for s in names[::step]), default=4) + 0.4
    panel = 2.3
    height = panel * max(len(backends), 1) + tick_room + 1.15
    fig = plots.figure(width, height, layout=None)
    fig.subplots_adjust(left=0.85 / width, right=1 - 0.2 / width, top=1 - 1.0 / height,
                        bottom=(tick_room + 0.15) / height, hspace=0.45)
    axes = fig.subplots(max(len(backends), 1), 1, sharex=True, squeeze=False)[:, 0]
    x = np.arange(len(order))
    for ax, backend in zip(axes, backends):
        rows = [r for r in result.rows_of(backend) if r.status != "inserted"]
        threshold = result.threshold_db.get(backend, math.nan)
        top = _ceiling(rows, threshold if math.isfinite(threshold) else 0.0)
        color = plots.color_of(backend)
        acc, acc_exact = _series(rows, "sqnr_db", top)
        local, local_exact = _series(rows, "local_sqnr_db", top)
        ax.plot(x, acc, color=color, lw=1.5, marker="o", ms=4, label="accumulated SQNR (the whole net on it)")
        ax.plot(x, local, color="black", lw=1.0, ls="--", marker="s", ms=3.5, mfc="none",
                label="local SQNR (the layer fed the reference's inputs)")
        exact = acc_exact | local_exact
        if exact.any():
            ax.plot(x[exact], np.full(int(exact.sum()), top), ls="none", marker="^", ms=6, color="0.35",
                    label="exact match (+inf dB), drawn at the top")
        if math.isfinite(threshold):
            ax.axhline(threshold, color="0.3", ls=":", lw=1.1, label="threshold (first diverging below it)")
        gone = [i for i, r in enumerate(rows) if r.status in ("fused", "missing")]
        bottom = min([v for v in [*acc, *local, threshold] if math.isfinite(v)] + [0.0]) - 5.0
        if gone:
            ax.plot(gone, [bottom + 2.0] * len(gone), ls="none", marker="x", ms=6, color=FUSED_COLOR,
                    label="fused or missing on this backend")
        first = result.first_diverging.get(backend)
        if first in order:
            i = order.index(first)
            ax.axvline(i, color=DIVERGING_COLOR, lw=1.4, alpha=0.8)
            ax.annotate(f"first diverging: {short_name(first, 40)}", (i, top), xytext=(4, -2),
                        textcoords="offset points", ha="left" if i < 0.6 * n else "right", va="top",
                        fontsize=plots.LEGEND_PT, color=DIVERGING_COLOR)
        ax.set_ylim(bottom, top + 4.0)
        ax.set_title(labels.get(backend, backend) + f" against {result.reference}", fontsize=plots.LABEL_PT,
                     loc="left", pad=3, y=plots.TITLE_Y)
        ax.set_ylabel("SQNR (dB)", fontsize=plots.LABEL_PT)
        ax.tick_params(labelsize=plots.TICK_PT)
        ax.grid(axis="y", color="0.9", lw=0.6)
        ax.xaxis.set_minor_locator(NullLocator())
    axes[-1].xaxis.set_major_locator(FixedLocator(list(x[::step])))
    axes[-1].set_xticklabels(names[::step], rotation=55, ha="right", rotation_mode="anchor", fontsize=plots.TICK_PT)
    axes[-1].set_xlim(-0.5, max(len(order) - 0.5, 0.5))
    axes[-1].set_xlabel("layer (the reference's topological order)", fontsize=plots.LABEL_PT)
    handles, texts = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:  # a marker only another panel needs still gets its legend entry
        for h, t in zip(*ax.get_legend_handles_labels()):
            if t not in texts:
                handles.append(h)
                texts.append(t)
    fig.legend(handles, texts, loc="upper center", ncol=2, frameon=False, fontsize=plots.LEGEND_PT,
               bbox_to_anchor=(0.5, 1.0))
    return fig


def _drawable(a: np.ndarray) -> np.ndarray:
    """An output as ``plots.overlay`` draws it: (1, C, …), (C, T) or (T,) as given; anything else (a batch of
    several) as its first values, flattened."""
    a = np.asarray(a)
    if a.ndim <= 2 or a.shape[0] == 1:
        return a
    return a.reshape(-1)[:OVERLAY_VALUES]


def output_overlay(output: str, reference_label: str, reference: np.ndarray,
                   tested: Mapping[str, np.ndarray]) -> Figure:
    """One network output: the reference and every backend under test, channel by channel (the first
    ``OVERLAY_CHANNELS``), the error trace under each."""
    ref = _drawable(reference)
    others = {label: _drawable(np.asarray(v).reshape(np.shape(reference))) for label, v in tested.items()}
    channels = 1 if ref.ndim == 1 else ref.shape[0] if ref.ndim == 2 else ref.shape[1]
    shown = list(range(min(channels, OVERLAY_CHANNELS)))
    return plots.overlay(ref, others, channels=shown, reference_label=f"{reference_label} (reference)",
                         title=f"output {short_name(output, 60)}" + (f" · channels 0–{shown[-1]} of {channels}"
                                                                      if channels > len(shown) else ""),
                         size=(11.2, 2.8 * math.ceil(len(shown) / 2) + 1.2) if len(shown) > 1 else (8.0, 3.8))


def as_png(fig: Any) -> tuple[bytes, int]:
    """(PNG bytes at HIDPI, the width in CSS pixels to show it at)."""
    return plots.to_png(fig), plots.display_size(fig)[0]
