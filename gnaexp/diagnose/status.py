"""One status per run, derived from the verdict engine (``diagnosis``, the ladder, the VAD metrics): the first thing
a report and the index show, with one sentence and the next step.

- **matches**: the GNA-side result sits at the quantization floor, and the floor is usable (SQNR ≥ 30 dB);
- **quantization-limited**: the error is quantization, and a setting would lower it (the next step names it) or
  int16 cannot do better here;
- **defect**: an error quantization does not explain (a layout path, a mistake the diagnosis names, NaN/Inf);
- **refused**: the GNA plugin (or the emulator) does not take the model as given; the support table says why;
- **failed to run**: the notebook stopped with an error (the batch's own status).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from gnaexp.vad.record import VadRecord

from gnaexp.diagnose.results import Diagnosis

MATCHES, LIMITED, DEFECT, REFUSED, FAILED = "matches", "quantization-limited", "defect", "refused", "failed to run"
SEVERITY = (FAILED, DEFECT, REFUSED, LIMITED, MATCHES)  # worst first
COLOURS = {MATCHES: "#c8f0c8", LIMITED: "#ffe1a8", DEFECT: "#f6b8b8", REFUSED: "#ddd0f0", FAILED: "#d9d9d9"}
MEANING = {
    MATCHES: "at the quantization floor, and the floor is usable (SQNR ≥ 30 dB)",
    LIMITED: "quantization error: a setting lowers it (the next step names it), or int16 cannot do better",
    DEFECT: "an error quantization does not explain: a layout path or a mistake the diagnosis names",
    REFUSED: "the GNA plugin does not take the model as given (the support table says why)",
    FAILED: "the notebook stopped with an error",
}
def device_commands(record: Any) -> str:
    """The round trip to a GNA machine for this record's net and settings: export, measure, diagnose."""
    from gnaexp.core.gna_settings import format_scale_factors

    cfg = record.config
    sets = " ".join(f"--set {k}={v}" for k, v in (("model", cfg.get("model")), ("input_file", cfg.get("input_file")))
                    if v)
    sf = cfg.get("scale_factor", 1.0)
    sets += f" --set scale_factor={format_scale_factors(sf) if isinstance(sf, (int, float, dict)) else sf}"
    return (f"gnaexp export {record.experiment if cfg.get('experiment') != 'model' else 'model'} {sets.strip()} "
            "--out pack; run pack/measure_on_device.py on the GNA machine; then gnaexp diagnose --export-dir pack")


@dataclass
class Finding:
    status: str
    verdict: str  # one sentence
    next_step: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def worst(statuses: Iterable[str | None]) -> str:
    """The most severe of ``statuses`` (matches when there is none)."""
    present = [s for s in statuses if s]
    return min(present, key=SEVERITY.index) if present else MATCHES


def _setting(text: str) -> str | None:
    """The setting a verdict advises ("set scale_factor=N"), if it names one."""
    for marker in ("set scale_factor=", "scale_factor="):
        if marker in text:
            value = text.split(marker, 1)[1].split(")")[0].split(";")[0].split(" ")[0].rstrip(".,")
            return f"scale_factor={value}"
    return None


def record_finding(record: Any) -> Finding:
    """The finding of an experiment or model record: the worst backend's status and verdict, and the next step."""
    from gnaexp.diagnose import verdicts as diagnosis

    # the GNA-side results first: the sentence is about the device (or its emulation) where one ran
    ordered = sorted(record.results, key=lambda r: r.kind == "reference")
    statuses = {r.label: diagnosis.result_status(record, r) for r in ordered}
    status = worst(statuses.values())
    verdicts = record.diagnosis.verdicts or diagnosis.diagnose_record(record).verdicts
    label = next((b for b, s in statuses.items() if s == status and b in verdicts), None)
    cause = diagnosis.record_finding(record) if status == LIMITED else None
    sentence = cause or (f"{label}: {verdicts[label]}" if label else "every backend matches the reference")
    if status == LIMITED:
        setting = _setting(cause or verdicts.get(label or "", ""))
        step = (f"set {setting} and run again" if setting else
                "int16 cannot do better at any scale factor here: find the layer that limits it with gnaexp diagnose "
                "(per-layer table)")
    elif status == DEFECT:
        layout = next((r.settings.get("layout") for r in record.results
                       if r.label == label and r.kind == "emulated"), None)
        step = (f"this is what the {layout} path computes: measure your device on the same inputs "
                f"({device_commands(record)}) to see whether it takes that path" if layout and layout != "correct"
                else f"name the mechanism with gnaexp diagnose ({device_commands(record)})")
    else:
        step = "nothing to change: the result is as good as int16 allows with these settings"
    return Finding(status, sentence, step)


def ladder_finding(result: Diagnosis) -> Finding:
    """The finding of a diagnosis ladder: a named mechanism is a defect, a scale factor to change is quantization."""
    from gnaexp.diagnose.verdicts import USABLE_FLOOR_DB

    observed, floor = result.observed, result.floor
    headline = result.headline
    if observed and observed.measured_status:  # an FP32 or reduced-float measurement, judged as such
        return Finding(observed.measured_status, observed.verdict,
                       "nothing to change" if observed.measured_status == MATCHES else
                       "measure on the GNA, or again in f32, with the pack's measure_on_device.py")
    if observed and observed.explained_by not in (None, "as-configured"):
        name = observed.explained_by
        how = next((h.mechanism for h in observed.hypotheses if h.hypothesis == name), "")
        return Finding(DEFECT, observed.verdict, f"the mechanism is '{name}'" + (f" ({how})" if how else "")
                       + ": change what produces it (the export, the plugin version or its settings), then measure "
                         "again on the same inputs")
    if headline:
        setting = _setting(headline)
        return Finding(LIMITED, headline, f"set {setting} and measure again" if setting else
                       "see the per-layer step for the layer that limits it")
    if observed and observed.sqnr_db is not None and observed.explained_by is None:
        return Finding(DEFECT, observed.verdict, "no mistake of the family reproduces it: send the bundle "
                       "(gnaexp bundle) with the device's output to support")
    sqnr = floor.sqnr_db if floor else math.nan
    if math.isfinite(sqnr) and sqnr < USABLE_FLOOR_DB and floor:
        return Finding(LIMITED, floor.verdict, "int16 cannot do better here: see the per-layer step")
    last = observed or floor
    return Finding(MATCHES, last.verdict if last is not None else "", "nothing to change")


def vad_finding(record: VadRecord, cause: str | None, agreement_ok: float) -> Finding:
    """The finding of a VAD run: the input scale factor as the cause, else whether the decisions hold."""
    if cause:
        return Finding(LIMITED, cause, f"set {_setting(cause) or 'scale_factor=recommended'} and run again")
    held = [(agg.label, agg.agreement) for b, agg in record.aggregate.items() if b != record.reference]
    bad = [(label, a) for label, a in held if a < agreement_ok]
    if bad:
        label, a = bad[0]
        return Finding(LIMITED, f"{label}: decisions agree with the reference on {100 * a:.1f} % of chunks",
                       "see the state drift figure and the emulator's plan for the layer that loses it")
    return Finding(MATCHES, "every backend's speech decisions agree with the reference's "
                            f"(≥ {100 * agreement_ok:g} % of chunks)", "nothing to change")


def badge(status: str) -> str:
    """The status as a coloured HTML badge."""
    from gnaexp.present.markup import escape

    return (f"<span class='gnaexp-status' style='background:{COLOURS.get(status, '#eee')};padding:2px 8px;"
            f"border-radius:3px;font-weight:600;white-space:nowrap'>{escape(status)}</span>")


def finding_html(finding: Finding, extra: Iterable[str] = (), details: Iterable[str] | None = None) -> str:
    """The first screen of a report: status, the verdict in one sentence, the next step (and notes), then every
    verdict line (``details``, Markdown-bold labels) as a list."""
    from gnaexp.present.markup import bold, escape

    notes = "".join(f"<p class='gnaexp-note'>{escape(n)}</p>" for n in extra)
    items = "" if details is None else \
        "<ul class='gnaexp-details'>" + "".join(f"<li>{bold(line)}</li>" for line in details) + "</ul>"
    return (f"<div class='gnaexp-verdict gnaexp-finding'><p>{badge(finding.status)} {escape(finding.verdict)}</p>"
            f"<p><b>Next step:</b> {escape(finding.next_step)}</p>{notes}</div>{items}")


YOUR_MODEL = ("run your own model with gnaexp run model --set model=FILE --set input_file=INPUTS.npz (any format "
              "OpenVINO reads); measure your GNA on the same inputs with gnaexp export, then pack/measure_on_device.py "
              "on the GNA machine, and bring the outputs back: gnaexp diagnose --export-dir pack")


def your_model_html() -> str:
    """The paragraph every report closes its first screen with: your own model, and your device's outputs."""
    from gnaexp.present.markup import escape

    return f"<p class='gnaexp-note'><b>Your model, your device:</b> {escape(YOUR_MODEL)}</p>"
