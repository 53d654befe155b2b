"""The forum team's own figures (read off their plots, so "about"): the reference column in reports.

Source: the forum case as restated in the project docs. L1 is given as an order of magnitude
(``n×1e-k``), cosine as read.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ForumFigure:
    experiment: str
    ir: str  # "default" or "nncf" (the forum's POT-quantized IR; NNCF is POT's successor)
    scale_factor: float
    l1: str  # order of magnitude as reported, e.g. "n×1e-2"
    cosine: float
    note: str = ""


FIGURES: tuple[ForumFigure, ...] = (
    ForumFigure("concat", "default", 2048, "n×1e-3", 0.999),
    ForumFigure("concat_conv", "default", 2048, "n×1e-2", 0.3, "first round"),
    ForumFigure("conv", "default", 1, "n×1e-2", 0.75),
    ForumFigure("conv", "default", 2048, "n×1e-2", 0.9999),
    ForumFigure("conv", "nncf", 1, "n×1e-4", 0.9999),
    ForumFigure("conv", "nncf", 2048, "n×1e-4", 0.9999),
    ForumFigure("concat_conv", "default", 1, "n×1e-1", 0.75),
    ForumFigure("concat_conv", "default", 2048, "n×1e-1", 0.74),
    ForumFigure("concat_conv", "nncf", 1, "n×1e-1", 0.60),
    ForumFigure("concat_conv", "nncf", 2048, "n×1e-1", 0.60),
)


def lookup(experiment: str, scale_factor: float, ir: str = "default") -> ForumFigure | None:
    """The forum's figure for this setting (the latest round where they repeated one), or None."""
    found = [f for f in FIGURES if f.experiment == experiment and f.ir == ir and f.scale_factor == float(scale_factor)]
    return found[-1] if found else None
