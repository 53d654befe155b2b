"""The per-layer comparison as a terminal table: one block per backend under test, one line per layer in
topological order, the first diverging layer marked, then the network outputs."""

from __future__ import annotations

import math

from gnaexp.layers.results import Bisection, LayerComparison, LayerDiff

MARK = "<< first diverging"


def _db(value: float | None) -> str:
    if value is None:
        return "-"
    return "inf" if value == math.inf else f"{value:.1f}"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None or math.isnan(value) else format(value, fmt)


def _line(r: LayerDiff, first: str | None) -> str:
    layer = r.layer if len(r.layer) <= 46 else "…" + r.layer[-45:]
    if r.status != "compared":
        return f"  {layer:<46} {r.op[:16]:<16} {r.status}"
    mark = f"  {MARK}" if r.layer == first else ""
    return (f"  {layer:<46} {r.op[:16]:<16} {_db(r.sqnr_db):>8} {_db(r.local_sqnr_db):>8} "
            f"{_num(r.cosine, '.6f'):>9} {_num(r.max_abs, '.3g'):>10}{mark}")


def table(result: LayerComparison) -> str:
    lines = [f"per-layer comparison against {result.reference}" + (f" ({result.model})" if result.model else "")]
    for backend in result.backends:
        rows = result.rows_of(backend)
        first = result.first_diverging.get(backend)
        lines += ["", f"{backend}  (threshold {result.threshold_db[backend]:g} dB on the local SQNR)",
                  f"  {'layer':<46} {'op':<16} {'acc dB':>8} {'local dB':>8} {'cosine':>9} {'max |err|':>10}"]
        lines += [_line(r, first) for r in rows]
        worst = result.worst(backend)
        lines.append(f"  first diverging: {first or 'none'}; worst layer: "
                     + (f"{worst.layer} (local {_db(worst.local_sqnr_db)} dB, accumulated {_db(worst.sqnr_db)} dB)"
                        if worst else "none compared"))
        counts = {s: sum(r.status == s for r in rows) for s in ("fused", "missing", "inserted")}
        if any(counts.values()):
            lines.append("  " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
        for r in rows:
            if r.is_output:
                lines.append(f"  output {r.layer}: " + (f"SQNR {_db(r.sqnr_db)} dB, cosine {_num(r.cosine, '.6f')}, "
                                                       f"max |err| {_num(r.max_abs, '.3g')}"
                                                       if r.status == "compared" else r.status))
        for note in result.notes.get(backend, []):
            lines.append(f"  note: {note}")
        if backend in result.bisection:
            lines += _bisection(result.bisection[backend])
    return "\n".join(lines)


def _names(names: list[str]) -> str:
    shown = ", ".join(n if len(n) <= 46 else "…" + n[-45:] for n in names[:4])
    return shown + (f" and {len(names) - 4} more" if len(names) > 4 else "")


def _bisection(b: Bisection) -> list[str]:
    if b.how == "none":
        return [f"  bisection: nothing to keep ({note})" for note in b.notes]
    lines = [f"  bisection ({b.how}; target {b.target_sqnr_db:g} dB on the lowest output):"]
    for s in b.steps:
        lines.append(f"    {s.phase:<6} {_db(s.output_sqnr_db):>7} dB  kept {len(s.kept)}"
                     + (f": {_names(s.kept)}" if s.kept else ""))
    if b.steps and b.reached:
        lines.append(f"  keep {len(b.kept)} layer(s) at the reference precision"
                     + (f" ({b.how}):" if b.kept else " (the outputs reach the target as they are)"))
        lines += [f"    {name}" for name in b.kept]
    elif b.steps:
        lines.append(f"  target not reached; the last step kept {len(b.kept)} layer(s)")
    for note in b.notes:
        lines.append(f"  bisection note: {note}")
    return lines
