"""Plain-text and row-dict summaries of a record: the metrics table the CLI prints and notebooks show."""

from __future__ import annotations

from typing import Any

from gnaexp.core import forum
from gnaexp.core.gna_settings import format_scale_factors
from gnaexp.core.records import Record
from gnaexp.present.index_entry import MetricRow
from gnaexp.present.markup import number


def _imported_device(result: Any) -> str:
    """The device an imported result's metadata names (upper case), "" when it names none."""
    meta = result.info.get("source_meta") or {}
    device = str(meta.get("device") or meta.get("backend", "").partition(":")[2])
    return device.upper().split(".")[0]


def rows(record: Record) -> list[MetricRow]:
    """One row per (backend, output) compared with the reference, plus the forum's figure where one exists."""
    cfg = record.config
    sf = cfg.get("scale_factor", 1.0)  # the forum's nets have one input: a per-input set has no figure
    fig = None if isinstance(sf, dict) else forum.lookup(record.experiment, sf, cfg.get("ir", "default"))
    kinds = {r.label: r.kind for r in record.results}
    # The forum's figures are GNA figures: show them only beside GNA-like rows (an import counts unless its
    # metadata says it came from another device).
    gna_like = {r.label for r in record.results
                if r.kind == "emulated" or r.backend.upper().endswith(":GNA")
                or (r.kind == "imported" and _imported_device(r) in ("", "GNA"))}
    out = []
    for label, per in record.metrics.items():
        for name, c in per.items():
            out.append(MetricRow(
                backend=label, kind=kinds.get(label, "?"), output=name, l1=c.l1, cosine=c.cosine, pearson=c.pearson,
                sqnr_db=c.sqnr_db, max_abs_error=c.max_abs_error, verdict=record.diagnosis.verdicts.get(label, ""),
                forum_l1=fig.l1 if fig and label in gna_like else None,
                forum_cosine=fig.cosine if fig and label in gna_like else None))
    return out


def table(record: Record) -> str:
    """Fixed-width metrics table against the reference; with more than one output, a column names each row's."""
    table_rows = rows(record)
    outputs = list(dict.fromkeys(r.output for r in table_rows))
    width = max([len("output")] + [len(str(o)) for o in outputs]) if len(outputs) > 1 else 0
    which = (lambda name: f"{str(name):<{width}} ") if width else (lambda name: "")  # noqa: E731
    head = (f"{'backend':<26} {which('output')}{'kind':<9} {'L1':>10} {'cosine':>10} {'pearson':>10} {'SQNR dB':>8} "
            f"{'max|err|':>10} {'forum L1':>9} {'forum cos':>9}")
    from gnaexp.diagnose.verdicts import record_finding

    cause = record_finding(record)
    sf = record.config.get("scale_factor")
    lines = ([f"→ {cause}"] if cause else []) + [
        f"{record.experiment}  (reference: {record.reference}; scale_factor="
        f"{format_scale_factors(sf) if isinstance(sf, (int, float, dict)) else sf}, "
        f"precision={record.config.get('precision')}, layout={record.config.get('layout')})", head, "-" * len(head)]
    for r in table_rows:
        lines.append(
            f"{r.backend:<26} {which(r.output)}{r.kind:<9} {number(r.l1, '10.3e', '-')} {number(r.cosine, '10.6f', '-')} "
            f"{number(r.pearson, '10.6f', '-')} {number(r.sqnr_db, '8.1f', '-')} {number(r.max_abs_error, '10.3e', '-')} "
            f"{r.forum_l1 or '-':>9} {number(r.forum_cosine, '9.4f', '-'):>9}"
        )
    lines.extend(f"note: {n}" for n in record.model_info.get("notes", []))
    verdicts = record.diagnosis.verdicts
    if verdicts:
        lines.append("")
        lines.extend(f"  {label}: {v}" for label, v in verdicts.items())
    return "\n".join(lines)
