"""Figures from arrays: overlay, scatter, error histogram, scale-factor sweep.

Every function takes arrays (never file paths) and returns a ``matplotlib.figure.Figure``. Figures are built
without pyplot, so they need no display and leave no global state behind: render them with ``to_png`` (Agg)
or let Jupyter show them. Output arrays are NCW with batch 1, as the forum nets produce, or (C, T) or (T,).
"""

from __future__ import annotations

import io
import math
import os
from typing import Any, Literal, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from gnaexp.core.errors import BadInput

DPI = 90  # pixels per inch at which a figure is shown (its CSS size)
HIDPI = 2  # rendered at HIDPI × DPI, shown at DPI: sharp on high-density screens and when zoomed
REFERENCE_COLOR = "black"
# Text sizes in points at the display size (DPI): ticks and legends at 9 pt or more stay readable in a report.
TICK_PT, LABEL_PT, LEGEND_PT, TITLE_PT = 9, 10, 9, 11
# Axes titles at a fixed height (``set_title(y=TITLE_Y)``): left to place itself, a title makes matplotlib measure
# every y tick label of its axes at each draw, to lift it above tick labels on top, which these axes never have.
TITLE_Y = 1.0
# Backends that agree draw on top of each other: each keeps its own dash pattern, so that agreement reads as
# dashes over the reference's solid line, not as one line of an unknown colour.
LINESTYLES = ("--", ":", "-.", (0, (5, 1, 1, 1)))
# Colour-blind-safe cycle (Okabe-Ito without black, which the reference uses).
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442")
# One colour per kind of backend, whatever else is plotted beside it: unticking a backend must not recolour
# the others. Matched on the label's start ("gna-emu (emulated)", "import:pack/outputs.npz").
BACKEND_COLORS = (("openvino:CPU", COLORS[0]), ("gna-emu", COLORS[1]), ("openvino:GNA", COLORS[2]),
                  ("import:", COLORS[3]), ("torch", COLORS[4]), ("openvino:", COLORS[5]))


def color_of(label: str) -> str:
    """The colour of a backend's line in every figure, from its label alone."""
    for prefix, color in BACKEND_COLORS:
        if label.startswith(prefix):
            return color
    return COLORS[sum(label.encode()) % len(COLORS)]


def _short_number(value: float, _pos: object = None) -> str:
    """Tick labels that fit a narrow margin and never hide their sign or leading digits (−0.25, 1e-05)."""
    if value == 0:
        return "0"
    text = f"{value:.4g}" if 1e-4 <= abs(value) < 1e4 else f"{value:.2g}"
    return text.replace("-", "\u2212", 1) if text.startswith("-") else text  # a real minus, as matplotlib's own


def _channels_first(a: np.ndarray) -> np.ndarray:
    """(N=1, C, T) / (C, T) / (T,) → (C, T), float64."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        return a[None, :]
    if a.ndim == 2:
        return a
    if a.shape[0] != 1:
        raise BadInput(f"expected batch 1, got shape {a.shape}; pass one sample")
    return a.reshape(a.shape[1], -1)


def _check(reference: np.ndarray, outputs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    ref = _channels_first(reference)
    outs = {}
    for label, arr in outputs.items():
        a = _channels_first(arr)
        if a.shape != ref.shape:
            raise BadInput(f"{label}: shape {np.shape(arr)} differs from the reference {np.shape(reference)}")
        outs[label] = a
    return ref, outs


def figure(width: float, height: float,
           layout: Literal["constrained", "compressed", "tight"] | None = "constrained") -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)  # attach the Agg canvas so savefig works without pyplot
    return fig


def _single_axes(width: float, height: float, title: str, legend: str = "top") -> tuple[Figure, Any, Any]:
    """A figure of one axes placed with fixed margins in inches, and a function that adds the figure legend.

    A layout engine measures every text twice per draw, which on these small figures costs more than drawing
    them; fixed margins fit because tick labels are kept short (``_short_number``). The legend goes above
    (``legend="top"``) or below the axes, in two columns, and the margin grows by its rows.
    """
    from matplotlib.ticker import FuncFormatter

    fig = figure(width, height, layout=None)
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=TITLE_PT, y=TITLE_Y)
    ax.tick_params(labelsize=TICK_PT)
    ax.yaxis.set_major_formatter(FuncFormatter(_short_number))

    def place_legend(**style: Any) -> None:
        _, labels = ax.get_legend_handles_labels()
        rows = math.ceil(len(labels) / 2)
        legend_h = 0.1 + 0.2 * rows if rows else 0.0
        top, bottom = 0.36 + (legend_h if legend == "top" else 0.05), 0.6 + (legend_h if legend == "bottom" else 0.0)
        fig.subplots_adjust(left=0.95 / width, right=1 - 0.2 / width, top=1 - top / height, bottom=bottom / height)
        if rows:
            fig.legend(loc="upper center" if legend == "top" else "lower center", ncol=2, frameon=False,
                       bbox_to_anchor=(0.5, 1.0 if legend == "top" else 0.0), fontsize=LEGEND_PT, **style)

    return fig, ax, place_legend


def overlay(
    reference: np.ndarray,
    outputs: Mapping[str, np.ndarray],
    channels: Sequence[int] | None = None,
    reference_label: str = "reference",
    title: str = "",
    max_channels: int = 8,
    size: tuple[float, float] | None = None,
) -> Figure:
    """Reference and each backend's output per output channel over time, the error trace under each channel.

    ``outputs`` maps a label (e.g. "gna-emu (emulated)") to an array shaped like ``reference``; each label keeps
    its colour (``color_of``). The legend sits above the plots, outside the data. ``size`` (inches) overrides
    the default figure size.
    """
    from matplotlib.ticker import FuncFormatter, NullLocator

    ref, outs = _check(reference, outputs)
    chans = list(channels) if channels is not None else list(range(min(ref.shape[0], max_channels)))
    for c in chans:
        if not 0 <= c < ref.shape[0]:
            raise BadInput(f"channel {c} out of range: the output has {ref.shape[0]} channels")
    ncols = 1 if len(chans) == 1 else 2
    nrows = math.ceil(len(chans) / ncols)
    width, height = size or (5.6 * ncols, 2.8 * nrows + 0.9)
    # Fixed margins in inches (constrained layout costs more than drawing the lines on many axes): room for
    # the title and the legend above, for signed tick labels and the axis labels on the left.
    fig = figure(width, height, layout=None)
    head = (0.34 if title else 0.0) + 0.36
    outer = fig.add_gridspec(nrows, ncols, left=1.1 / width, right=1 - 0.12 / width, top=1 - (head + 0.24) / height,
                             bottom=0.5 / height, hspace=0.4, wspace=0.85 / (width / ncols))
    t = np.arange(ref.shape[1])
    for i, c in enumerate(chans):
        row, col = divmod(i, ncols)
        pair = outer[row, col].subgridspec(2, 1, height_ratios=[3, 1.2], hspace=0.08)
        ax = fig.add_subplot(pair[0])
        err_ax = fig.add_subplot(pair[1])
        ax.plot(t, ref[c], color=REFERENCE_COLOR, lw=1.6, label=reference_label)
        for k, (label, a) in enumerate(outs.items()):
            color, style = color_of(label), LINESTYLES[k % len(LINESTYLES)]
            ax.plot(t, a[c], color=color, lw=1.3, ls=style, label=label)
            err_ax.plot(t, a[c] - ref[c], color=color, lw=0.9, ls=style)
        err_ax.axhline(0.0, color="0.6", lw=0.6)
        ax.set_title(f"channel {c}", fontsize=LABEL_PT, pad=3, y=TITLE_Y)
        ax.xaxis.set_major_locator(NullLocator())  # the error axes below carry the time ticks (fewer to draw)
        ax.tick_params(labelsize=TICK_PT)
        ax.yaxis.set_major_formatter(FuncFormatter(_short_number))
        err_ax.yaxis.set_major_formatter(FuncFormatter(_short_number))
        err_ax.locator_params(axis="y", nbins=3)
        err_ax.tick_params(labelsize=TICK_PT)
        err_ax.set_ylabel("error", fontsize=LABEL_PT, labelpad=8)
        ax.set_xlim(0, max(len(t) - 1, 1))
        err_ax.set_xlim(ax.get_xlim())
        if row == nrows - 1:
            err_ax.set_xlabel("time step", fontsize=LABEL_PT)
        if i == 0:
            handles, labels = ax.get_legend_handles_labels()
            fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=LEGEND_PT, frameon=False,
                       bbox_to_anchor=(0.5, 1 - (0.34 if title else 0.02) / height))
    if title:
        fig.suptitle(title, fontsize=TITLE_PT, y=1 - 0.06 / height, va="top")
    return fig


def scatter(
    reference: np.ndarray, outputs: Mapping[str, np.ndarray], reference_label: str = "reference", title: str = ""
) -> Figure:
    """Each backend's values against the reference, with the y = x line a perfect match would lie on."""
    ref, outs = _check(reference, outputs)
    fig, ax, place_legend = _single_axes(5.2, 4.6, title or "backend vs reference")
    values = [ref.ravel()] + [a.ravel() for a in outs.values()]
    lo = min(float(np.min(v)) for v in values)
    hi = max(float(np.max(v)) for v in values)
    pad = 0.02 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.5", lw=0.8, label="y = x")
    for k, (label, a) in enumerate(outs.items()):  # distinct markers: agreeing backends stay told apart
        ax.scatter(ref.ravel(), a.ravel(), s=10 if k else 6, alpha=0.6, color=color_of(label), label=label,
                   marker="ox+^"[k % 4], rasterized=True)
    ax.set_xlabel(reference_label, fontsize=LABEL_PT)
    ax.set_ylabel("backend output", fontsize=LABEL_PT)
    place_legend(markerscale=2)
    return fig


def error_histogram(
    reference: np.ndarray, outputs: Mapping[str, np.ndarray], bins: int = 60, title: str = ""
) -> Figure:
    """Distribution of (backend − reference) for each backend on shared bins."""
    ref, outs = _check(reference, outputs)
    fig, ax, place_legend = _single_axes(5.6, 4.0, title or "error distribution")
    errors = {label: (a - ref).ravel() for label, a in outs.items()}
    if errors:
        lo = min(float(e.min()) for e in errors.values())
        hi = max(float(e.max()) for e in errors.values())
        if hi - lo < 1e-12:  # identical outputs: one narrow bin around the common value
            lo, hi = lo - 1e-9, hi + 1e-9
        edges = np.linspace(lo, hi, bins + 1)
        for k, (label, e) in enumerate(errors.items()):
            ax.hist(e, bins=edges, histtype="step", lw=1.4, ls="-" if k == 0 else LINESTYLES[(k - 1) % len(LINESTYLES)],
                    color=color_of(label), label=label)
    ax.set_xlabel("backend − reference", fontsize=LABEL_PT)
    ax.set_ylabel("count", fontsize=LABEL_PT)
    place_legend()
    return fig


def sweep(
    scale_factors: Sequence[float],
    values: Mapping[str, Sequence[float]],
    metric: str = "SQNR (dB)",
    saturation_sf: float | None = None,
    current_sf: float | None = None,
    title: str = "",
) -> Figure:
    """A metric against the input scale factor (log x) for one or more series, the saturation onset marked.

    ``saturation_sf`` is the scale factor above which the input no longer fits int16; ``current_sf`` the one
    the run used.
    """
    sfs = np.asarray(scale_factors, dtype=np.float64)
    if sfs.size == 0 or np.any(sfs <= 0):
        raise BadInput("scale_factors must be a non-empty list of positive numbers")
    fig, ax, place_legend = _single_axes(6.0, 4.4, title or f"{metric} vs scale factor", legend="bottom")
    for k, (label, ys) in enumerate(values.items()):
        y = np.asarray(ys, dtype=np.float64)
        if y.shape != sfs.shape:
            raise BadInput(f"{label}: {y.size} values for {sfs.size} scale factors")
        ax.plot(sfs, np.where(np.isfinite(y), y, np.nan), marker="os^D"[k % 4], ms=4 + k, lw=1.2,
                ls="-" if k == 0 else LINESTYLES[(k - 1) % len(LINESTYLES)], color=COLORS[k % len(COLORS)],
                label=label, mfc="none" if k else None)
    ax.set_xscale("log", base=2)
    if saturation_sf is not None and saturation_sf > 0:
        ax.axvline(saturation_sf, color="#D55E00", ls=":", lw=1.2, label=f"input saturates above sf {saturation_sf:.4g}")
        ax.axvspan(saturation_sf, max(float(sfs.max()), saturation_sf) * 1.5, color="#D55E00", alpha=0.08)
    if current_sf is not None:
        ax.axvline(current_sf, color="0.4", ls="--", lw=0.9, label=f"this run: sf {current_sf:g}")
    ax.set_xlim(float(sfs.min()) / 1.5, float(sfs.max()) * 1.5)
    ax.set_xlabel("input scale factor", fontsize=LABEL_PT)
    ax.set_ylabel(metric, fontsize=LABEL_PT)
    place_legend()
    return fig


_MATHTEXT: Any = None  # the mathtext parser of every figure to_png renders (``_shared_mathtext``)


def _forget_mathtext() -> None:
    global _MATHTEXT
    _MATHTEXT = None


# A forked child parses its own labels: what a parser keeps holds the fonts it read, and a font read in the
# parent reads its file through the parent's file offset, which every forked child shares. Two kernels forked from
# one warm process (a batch's zygote) drawing at once then read each other's glyph bytes: FreeType failed
# ("too many hints") or drew a wrong glyph in about 1 of 40 figures. The grammar itself (the costly part) is the
# parser class's and stays.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_mathtext)


def _shared_mathtext() -> Any:
    """One mathtext parser for every figure rendered here. Each Agg renderer makes its own, and a parser keeps
    what it parsed for itself only: the log axes' tick labels ($2^{10}$) were parsed anew for every figure (about
    5 ms a label), though they are the same from figure to figure. Per process: see ``_forget_mathtext``."""
    global _MATHTEXT
    if _MATHTEXT is None:
        from matplotlib.mathtext import MathTextParser

        _MATHTEXT = MathTextParser("path")  # what RendererAgg uses
    return _MATHTEXT


def to_png(fig: Figure, dpi: int = DPI * HIDPI, colors: int = 128) -> bytes:
    """PNG bytes of a figure (Agg) at ``dpi`` (by default HIDPI × the display DPI: show it at
    ``display_size``), small enough to embed in a report.

    Saved with a palette of ``colors`` colours: plots of noisy signals compress badly as RGBA, and a palette
    keeps a report's images at about a third of the size with no visible loss (``colors=0`` keeps RGBA).
    """
    from PIL import Image

    fig.set_dpi(dpi)
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.get_renderer().mathtext_parser = _shared_mathtext()  # the renderer draw() then uses (same size, dpi)
    canvas.draw()
    image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    image = image.convert("RGB")
    if colors:
        # Fast octree: a tenth of median cut's time on a hi-dpi figure, and no visible difference on line plots.
        image = image.quantize(colors=colors, method=Image.Quantize.FASTOCTREE)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def display_size(fig: Figure) -> tuple[int, int]:
    """The CSS pixel size at which a figure is meant to be shown (its inches at DPI)."""
    w, h = fig.get_size_inches()
    return round(w * DPI), round(h * DPI)


def bars(labels: Sequence[str], values: Sequence[float], xlabel: str, title: str = "",
         threshold: float | None = None, threshold_label: str = "", highlight: int | None = None) -> Figure:
    """Horizontal bars (first label on top), e.g. hypothesis scores or SQNR per layer; a threshold line."""
    vals = np.asarray(values, dtype=np.float64)
    if len(labels) != vals.size:
        raise BadInput(f"{len(labels)} labels for {vals.size} values")
    fig = figure(8.0, 1.1 + 0.34 * max(len(labels), 1))
    ax = fig.add_subplot()
    y = np.arange(vals.size)[::-1]
    colors = [COLORS[1] if i == highlight else COLORS[0] for i in range(vals.size)]
    ax.barh(y, np.where(np.isfinite(vals), vals, 0.0), color=colors, height=0.7)
    ax.set_yticks(y, [str(label)[:48] for label in labels], fontsize=TICK_PT)
    if threshold is not None:
        ax.axvline(threshold, color="0.3", ls="--", lw=1.0, label=threshold_label or f"{threshold:g}")
        fig.legend(fontsize=LEGEND_PT, loc="outside lower center", frameon=False)
    ax.set_xlabel(xlabel, fontsize=LABEL_PT)
    ax.tick_params(axis="x", labelsize=TICK_PT)
    ax.set_title(title, fontsize=TITLE_PT, y=TITLE_Y)
    return fig


def warm_up(sweep_scale_factors: Sequence[float] = (1.0, 2.0, 4.0)) -> None:
    """Draw one small figure of each kind, so that what matplotlib loads on first use (fonts at each size, the
    mathtext grammar behind log-axis tick labels, tick machinery) is loaded in a process that forks kernels.

    The sweep spans ``sweep_scale_factors``: given the scale factors of the sweeps to come, their tick labels are
    parsed here, once for this process (``_shared_mathtext``; a forked child parses its own)."""
    t = np.linspace(0.0, 1.0, 16)
    ref, out = t, {"gna-emu (emulated)": t * 0.9}
    sfs = [float(s) for s in sweep_scale_factors]
    for fig in (overlay(ref, out, title="warm-up"), scatter(ref, out), error_histogram(ref, out),
                sweep(sfs, {"sqnr": [1.0] * len(sfs)}, saturation_sf=sfs[-1], current_sf=sfs[0]),
                bars(["warm-up"], [1.0], "x", title="warm-up", threshold=0.5)):
        to_png(fig)

