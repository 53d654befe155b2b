"""A value as a message quotes it: short, whatever its size (a message must never print a megabyte of YAML)."""

from __future__ import annotations

import reprlib
from typing import Any

LIMIT = 80  # characters of a value a message quotes at most


class _Short(reprlib.Repr):
    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxstring, self.maxother = 3, LIMIT, LIMIT
        self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = self.maxdict = 6

    def repr_int(self, x: int, level: int) -> str:  # repr of a 5000-digit integer raises, and costs
        return repr(x) if x.bit_length() <= 256 else f"<an integer of {x.bit_length()} bits>"


_SHORT = _Short()


def excerpt(value: Any, limit: int = LIMIT) -> str:
    """``repr(value)`` cut to at most ``limit`` characters (…), built without walking all of a big value."""
    text = _SHORT.repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"
