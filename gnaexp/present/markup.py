"""The one place text becomes HTML: escaping, numbers in tables, the bold of verdict lines, whole tables.

Every page, report fragment and widget that writes HTML by hand builds it from these, so that no value reaches a
page unescaped and a number reads the same in the CLI table, a notebook and the index.
"""

from __future__ import annotations

import html
import math
import re
from typing import Any, Iterable

MISSING = "–"


def number(value: Any, spec: str = "", missing: str = MISSING) -> str:
    """A value for a table: formatted numbers, ``missing`` for None and NaN (no value), '+inf'/'-inf' spelled out."""
    if value is None:
        return missing
    if isinstance(value, float) and not math.isfinite(value):
        return missing if math.isnan(value) else ("+inf" if value > 0 else "-inf")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, spec)
    return str(value)


def escape(value: Any) -> str:
    return html.escape(str(value))


def cell(value: Any, spec: str = "") -> str:
    """``number`` for HTML: the text escaped."""
    return escape(number(value, spec))


def bold(text: str) -> str:
    """Escape a verdict line and turn its Markdown **bold** into <b>…</b>."""
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escape(text))


_NUMERIC = re.compile(r"^[-+]?(\d[\d,]*\.?\d*(e[-+]?\d+)?|\.\d+|inf)( ?(dB|s|%))?$|^" + MISSING + "$")


def _td(content: str) -> str:
    """A cell: numbers right-aligned (they line up by digit), text left-aligned (it reads from the left)."""
    align = "right" if _NUMERIC.match(content.strip()) else "left"
    return f"<td style='text-align:{align}'>{content}</td>"


def table(head: Iterable[str], rows: Iterable[Iterable[str]], css_class: str = "", caption: str = "",
          row_classes: Iterable[str] = ()) -> str:
    """An HTML table; ``rows`` hold cells that are already HTML (built with ``cell``/``escape``); ``row_classes``:
    a CSS class per row ("" for none), for rows a page styles apart."""
    cap = f"<caption style='caption-side:bottom;text-align:left'>{caption}</caption>" if caption else ""
    classes = list(row_classes)
    body = "".join((f"<tr class='{escape(classes[i])}'>" if i < len(classes) and classes[i] else "<tr>")
                   + "".join(_td(c) for c in row) + "</tr>" for i, row in enumerate(rows))
    return (f"<table class='{escape(css_class)}'>{cap}<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head)
            + f"</tr></thead><tbody>{body}</tbody></table>")


def plain(value: Any) -> str:
    """A setting or environment value as a reader writes it: a mapping as ``key: value; …``, a list comma-separated,
    a float rounded to 6 significant digits; never Python's dict/list text."""
    if isinstance(value, dict):
        return "; ".join(f"{k}: {plain(v)}" for k, v in value.items()) or MISSING
    if isinstance(value, (list, tuple)):
        return ", ".join(plain(v) for v in value) or MISSING
    if isinstance(value, float):
        return number(value, ".6g")
    return str(value)


def key_value_rows(items: Iterable[tuple[Any, Any]]) -> str:
    """Rows of a two-column table (setting, environment): key in a header cell, value beside it, both escaped."""
    return "".join(f"<tr><th style='text-align:left'>{escape(k)}</th><td style='text-align:left'>{escape(plain(v))}"
                   "</td></tr>" for k, v in items)
