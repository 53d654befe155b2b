"""The forum's POT experiment, redone with NNCF: default IR vs quantized IR, side by side.

For each net, IR (default FP32 / NNCF-quantized), scale factor and emulator layout, one row of metrics against
torch FP32, with the forum's own figure beside it and the input scale factor the GNA rules actually used (a
quantized IR's FakeQuantize range overrides the configured one). Emulated rows say so. The POT notebook and
its batch rows call ``run_study``; the tables and the verdict are built here, not in the notebook.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from gnaexp import parameters
from gnaexp.core import forum
from gnaexp.core.records import Record
from gnaexp import experiment
from gnaexp.emulator.plan_row import Lane
from gnaexp.experiment import ExperimentConfig, IR_FLOAT, IR_NNCF
from gnaexp.present.index_entry import IndexEntry, MetricRow
from gnaexp.present.markup import cell, escape, table as markup_table


@dataclass
class Study:
    base: ExperimentConfig
    experiments: list[str]
    scale_factors: list[float]
    layouts: list[str]
    record_dir: Path
    records: list[Record] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


def run(params: Mapping[str, Any]) -> Study:
    """Run every (experiment, IR, sf, layout) of the notebook parameters. Writes into ``record_dir``: each run's
    record folder and the index entry."""
    checked = parameters.pot(params)
    study = Study(checked.base, checked.experiments, checked.scale_factors, checked.layouts,
                  Path(str(params.get("record_dir") or "pot.record")))
    for name in study.experiments:
        for ir in (IR_FLOAT, IR_NNCF):
            for sf in study.scale_factors:
                for i, layout in enumerate(study.layouts):
                    # CPU does not depend on the emulator layout: run it with the first layout only.
                    backends = ["torch", "gna-emu"] + (["openvino:CPU"] if i == 0 else [])
                    config = dataclasses.replace(study.base, experiment=name, ir=ir, scale_factor=sf,
                                                 layout=layout, backends=backends)
                    config.validate()
                    # The torch reference (and float IR) come from the cache after the first run of this net.
                    record = experiment.run(config, study.record_dir / f"{name}-{ir}-sf{sf:g}-{layout}", use_cache=True)
                    study.records.append(record)
                    study.rows.extend(_rows(record, name, ir, sf, layout))
    IndexEntry("pot", verdict_lines(study), [_index_row(r) for r in study.rows if r["kind"] == "emulated"], [],
               study_finding(study)).save(study.record_dir)
    return study


def study_finding(study: Study) -> Any:
    """The study's status: its worst run's, with that run's next step and the study's first verdict line."""
    from gnaexp.diagnose import status

    findings = [(status.record_finding(r), r) for r in study.records]
    found, record = min(findings, key=lambda f: status.SEVERITY.index(f[0].status))
    where = (f"{record.experiment}, {record.config.get('ir')} IR, sf {record.config.get('scale_factor'):g}, layout "
             f"{record.config.get('layout')}")
    lines = verdict_lines(study)
    return status.Finding(found.status, lines[0].replace("**", "") if lines else found.verdict,
                          f"{found.next_step} (worst run: {where})")


def _rows(record: Record, name: str, ir: str, sf: float, layout: str) -> list[dict[str, Any]]:
    fig = forum.lookup(name, sf, ir)
    out = []
    for result in record.results:
        per = record.metrics.get(result.label)
        if not per:
            continue
        comp = next(iter(per.values()))
        used = result.info.get("input_scale_factors_used") or {}
        emulated = result.kind == "emulated"
        plan = result.plan_rows()
        accumulators = [p for p in plan if p.lane is Lane.INT32]
        out.append({
            "experiment": name, "ir": ir, "scale_factor": sf, "backend": result.label, "kind": result.kind,
            "layout": layout if emulated else "-", "l1": comp.l1, "cosine": comp.cosine, "pearson": comp.pearson,
            "sqnr_db": comp.sqnr_db, "input_sf_used": next(iter(used.values())) if used else None,
            "sf_overridden": "fakequantize" in (result.info.get("input_sf_source") or {}).values(),
            "saturations": sum(p.saturations for p in plan),
            "accumulator_saturations": sum(p.saturations for p in accumulators),
            "accumulator_values": sum(p.values for p in accumulators),
            "forum_l1": fig.l1 if fig and emulated else None,
            "forum_cosine": fig.cosine if fig and emulated else None,
        })
    return out


def _index_row(r: Mapping[str, Any]) -> MetricRow:
    return MetricRow(f"{r['experiment']} {r['ir']} IR sf {r['scale_factor']:g} {r['layout']} (emulated)",
                     cosine=r["cosine"], sqnr_db=r["sqnr_db"], l1=r["l1"], kind="emulated",
                     forum_cosine=r["forum_cosine"], forum_l1=r["forum_l1"])


def verdict_lines(study: Study) -> list[str]:
    """What the side-by-side says, in words (``diagnosis.study_verdict_lines``)."""
    from gnaexp.diagnose import verdicts as diagnosis

    return diagnosis.study_verdict_lines(study.rows, study.experiments, study.scale_factors)


def verdict(study: Study) -> Any:
    """The study's first screen: status, verdict and next step, then the verdict lines."""
    from gnaexp.diagnose import status
    from gnaexp.present.report import HTML

    return HTML(status.finding_html(study_finding(study), (), verdict_lines(study)))


def environment(study: Study) -> Any:
    """The environment block of the study's first record (every record in ``record_dir`` carries its own)."""
    from gnaexp.present.report import environment_rows, HTML

    return HTML(f"<table class='gnaexp-env'>{environment_rows(study.records[0].environment)}</table>")


def table(study: Study) -> "Any":
    """HTML table of every row, the forum's figure beside the emulated ones."""
    from gnaexp.present.report import HTML

    head = ("net", "IR", "sf", "backend", "layout", "input sf used", "L1", "cosine", "Pearson", "SQNR dB",
            "int32 sat.", "forum L1", "forum cosine")
    rows = []
    for r in study.rows:
        used = cell(r["input_sf_used"], ".6g") + (" (FQ)" if r["sf_overridden"] else "")
        rows.append((escape(r["experiment"]), escape(r["ir"]), cell(r["scale_factor"], "g"), escape(r["backend"]),
                     escape(r["layout"]), used, cell(r["l1"], ".2e"), cell(r["cosine"], ".6f"),
                     cell(r["pearson"], ".6f"), cell(r["sqnr_db"], ".1f"),
                     cell(r["accumulator_saturations"] if r["kind"] == "emulated" else None), cell(r["forum_l1"]),
                     cell(r["forum_cosine"], ".4g")))
    return HTML(markup_table(head, rows, "gnaexp-pot", "reference: torch FP32 · gna-emu rows are emulated (GNA "
                             "integer emulator, not a device) · forum figures are the forum team's GNA measurements "
                             "(about)"))


def plan_table(study: Study) -> "Any":
    """Per net: each quantizer of the NNCF IR (levels, range, derived sf) and the emulator's layer plan for it."""
    from gnaexp.present.report import HTML

    parts = []
    for record in study.records:
        if record.config["ir"] != IR_NNCF or record.config["layout"] != study.layouts[0] or \
                record.config["scale_factor"] != study.scale_factors[0]:
            continue
        q = record.model_info.get("quantization", {})
        fq = [(escape(r["name"]), escape(r["on"]), escape(r["precision"]), cell(r["levels"]),
               f"{cell(r['output_range'][0], '.5g')} … {cell(r['output_range'][1], '.5g')}",
               cell(r["derived_scale_factor"], ".6g")) for r in q.get("fake_quantize", [])]
        emu = next((r for r in record.results if r.kind == "emulated"), None)
        plan = [tuple(cell(v, ".6g" if isinstance(v, float) else "")
                      for v in (p.layer, p.op, p.precision, p.in_sf, p.w_sf, p.out_sf, p.saturations))
                for p in (emu.plan_rows() if emu else [])]
        notes = "".join(f"<li>{escape(n)}</li>" for n in q.get("notes", []))
        name = escape(record.experiment)
        parts.append(f"<h4>{name}: NNCF quantizers</h4>"
                     + markup_table(("node", "on", "precision", "levels", "range", "GNA scale factor"), fq)
                     + f"<h4>{name}: emulated GNA plan (quantized IR)</h4>"
                     + markup_table(("layer", "op", "precision", "in sf", "w sf", "out sf", "saturations"), plan)
                     + f"<p>How POT's GNA settings map onto NNCF:</p><ul>{notes}</ul>")
    return HTML("".join(parts))
