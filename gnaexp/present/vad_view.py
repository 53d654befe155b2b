"""What notebooks/vad.ipynb shows of a silero_vad record: waveform with ground truth, probability per backend,
decision strips, state drift, metrics, the emulator's support report and plan, and the verdict in words."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from gnaexp import parameters
from gnaexp.backends import parse_backend_list
from gnaexp.present.index_entry import IndexEntry, MetricRow
from gnaexp.present.report import HTML
from gnaexp.present import plots
from gnaexp.present.markup import cell, escape, table
from gnaexp.vad import audio as audio_mod, metrics as vad_metrics, run as vad_run, stream as vad
from gnaexp.vad.options import DEVICE_SETTINGS, VadOptions
from gnaexp.vad.record import VadRecord
from gnaexp.core.errors import BadInput


SAMPLE = Path(__file__).resolve().parents[2] / "data" / "speech" / "speech_snr10.wav"  # in the source checkout


def _color(i: int, backend: str) -> str:
    """The reference (first backend) in black, the others in their backend's colour (as in every figure)."""
    return plots.REFERENCE_COLOR if i == 0 else plots.color_of(backend)


@dataclass
class Shown:
    """A run as the notebook shows it: the record, and the tracks and audio its figures plot."""

    record: VadRecord
    tracks: dict[str, np.ndarray]  # FILE_STEM/BACKEND → probability per chunk (tracks.npz)
    audio: dict[str, np.ndarray]  # file name → samples at 16 kHz


def run(params: Mapping[str, Any]) -> Shown:
    """The notebook's parameters (``globals()``) → the audio (a .wav file or a folder of them; "" for the kit's
    speech sample) streamed through the backends: the record, with the tracks and the audio for the plots. Writes
    into ``record_dir``: record.json, tracks.npz, the IR and the index entry."""
    parameters.vad(params)
    audio = str(params.get("audio") or "")
    record_dir = str(params.get("record_dir") or "vad.record")
    source = Path(audio) if audio else SAMPLE
    if not audio and not source.exists():  # an installed package: the sample lives in the source repository
        raise BadInput("the kit's speech sample (data/speech/speech_snr10.wav) ships with gnaexp's source "
                         "repository, not with the installed package: set audio to a 16 kHz mono .wav file or a "
                         "folder of them, or run from a checkout of the repository")
    if not source.exists():
        raise BadInput(f"audio {audio!r} does not exist; give a 16 kHz mono .wav file or a folder of them")
    wavs = vad_run.wav_files(source)
    names = parse_backend_list(str(params.get("backends") or ",".join(vad_run.DEFAULT_BACKENDS)))
    options = VadOptions.from_json({k: params[k] for k in DEVICE_SETTINGS if k in params and params[k] != ""})
    record = vad_run.run(wavs, names, Path(record_dir), options=options)
    index_entry(record).save(record_dir)
    with np.load(Path(record_dir) / "tracks.npz") as tracks:
        return Shown(record, {k: tracks[k] for k in tracks.files},
                     {p.name: audio_mod.load_wav(p).samples for p in wavs})


def _time(n: int) -> np.ndarray:
    return np.arange(n) * vad.CHUNK / vad.SAMPLE_RATE


def figure(shown: Shown, file: str | None = None) -> Any:
    """Waveform with the true speech segments, every backend's probability, and one decision strip each."""
    record = shown.record
    f = record.file(file)
    stem = Path(f.file).stem
    labels = record.labels
    fig = plots.figure(9.5, 6.2)
    ax_wave, ax_p, ax_d = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [1.2, 2, 1]})
    samples = shown.audio[f.file]
    ax_wave.plot(np.arange(len(samples)) / vad.SAMPLE_RATE, samples, color="0.35", lw=0.4)
    for start, end in f.truth or []:
        for ax in (ax_wave, ax_p):
            ax.axvspan(start * vad.CHUNK / vad.SAMPLE_RATE, end * vad.CHUNK / vad.SAMPLE_RATE, color="tab:green",
                       alpha=0.12, lw=0)
    ax_wave.set_ylabel("audio")
    ax_wave.set_title(f"{f.file}: speech (green: synthesis ground truth)", loc="left", fontsize=plots.LABEL_PT,
                      y=plots.TITLE_Y)
    for i, b in enumerate(record.backends):
        p = shown.tracks[f"{stem}/{b}"]
        ax_p.plot(_time(len(p)), p, lw=1.6 if i == 0 else 1.2, color=_color(i, b), label=labels[b],
                  ls="-" if i == 0 else plots.LINESTYLES[(i - 1) % len(plots.LINESTYLES)])
        decided = vad_metrics.decisions(p)
        ax_d.fill_between(_time(len(p)), i + 0.1, i + 0.1 + 0.8 * decided, step="post", color=_color(i, b), lw=0)
    ax_p.axhline(0.5, color="0.5", lw=0.6, ls="--")
    ax_p.set_ylabel("speech probability")
    ax_p.set_ylim(-0.02, 1.02)
    ax_p.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=plots.LEGEND_PT, frameon=False)
    ax_d.set_yticks([i + 0.5 for i in range(len(record.backends))], record.backends, fontsize=plots.TICK_PT)
    ax_d.set_ylim(0, len(record.backends))
    ax_d.set_xlabel("time (s)")
    ax_d.set_title("decisions at 0.5", loc="left", fontsize=plots.LABEL_PT, y=plots.TITLE_Y)
    for ax in (ax_wave, ax_p, ax_d):
        ax.tick_params(labelsize=plots.TICK_PT)
    return fig


def drift_figure(record: VadRecord, file: str | None = None) -> Any:
    """SQNR of the LSTM state (h and c) per step against the reference: does the error accumulate?"""
    f = record.file(file)
    fig = plots.figure(9.5, 2.8)
    ax = fig.subplots()
    for i, b in enumerate(record.backends[1:], start=1):
        drift = f.backends[b].state_drift
        if drift is None:  # an imported track without state, or a track that was not scored
            continue
        for part, values, style in (("h", drift.h, "-"), ("c", drift.c, ":")):
            ax.plot(_time(len(values)), np.minimum(values, 150), style, color=_color(i, b),
                    label=f"{record.labels[b]} {part}", lw=1)
    ax.set_ylabel("state SQNR (dB)")
    ax.set_xlabel("time (s)")
    ax.set_title("recurrent state against the reference (capped at 150 dB)", loc="left", fontsize=plots.LABEL_PT,
                 y=plots.TITLE_Y)
    ax.tick_params(labelsize=plots.TICK_PT)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=plots.LEGEND_PT, frameon=False)
    return fig


def metrics_table(record: VadRecord) -> HTML:
    """One row per file and backend: probability errors, flips, segments, speed."""
    head = ["file", "backend", "max |Δp|", "mean |Δp|", "cosine", "SQNR dB", "agreement", "flips (hyst.)",
            "segments vs ref P/R", "vs truth P/R (±8)", "ms/chunk"]
    rows = []
    for f in record.files:
        for r in f.backends.values():
            s = r.scores
            if s is None:  # not scored: the verdict lines name the NaN/Inf track
                rows.append([cell(f.file), cell(r.label)] + [cell(None)] * (len(head) - 2))
                continue
            ref, truth = s.segments_vs_reference, s.segments_vs_truth_loose
            rows.append([cell(f.file), cell(r.label), cell(s.max_abs_dp, ".2e"), cell(s.mean_abs_dp, ".2e"),
                         cell(s.cosine, ".6f"), cell(s.sqnr_db, ".1f"), cell(100 * s.agreement, ".1f"),
                         escape(f"{s.flips} ({s.hysteresis_flips})"),
                         escape(f"{ref.precision:.2f}/{ref.recall:.2f}"),
                         escape(f"{truth.precision:.2f}/{truth.recall:.2f}") if truth else cell(None),
                         cell(r.ms_per_chunk, ".2f")])
    return HTML(table(head, rows))


def support_table(record: VadRecord) -> HTML:
    """The emulator's answer per op: native, decomposed, rewritten, host, movement, folded."""
    from collections import Counter

    rows, counts = [], Counter[str]()
    for em in record.emulator.values():
        for r in em.support:
            rows.append([escape(r["status"]), escape(r["op"]), escape(r["name"]), escape(r["how"])])
            counts[r["status"]] += 1
    summary = "summary: " + ", ".join(f"{n} {s}" for s, n in counts.most_common())
    return HTML(table(["status", "op", "layer", "what the GNA plugin does"], rows, caption=escape(summary)))


def plan_table(record: VadRecord) -> HTML:
    """The emulator's plan: precision, scales and saturations per layer over the whole stream."""
    rows = []
    for em in record.emulator.values():
        for r in em.plan:
            rows.append([escape(r["layer"]), escape(r["op"]), cell(r.get("in_sf"), ".6g"), cell(r.get("w_sf"), ".6g"),
                         cell(r.get("out_sf"), ".6g"), cell(r["saturations"])])
    return HTML(table(["layer", "op", "in sf", "w sf", "out sf", "saturated values"], rows))


def verdict_lines(record: VadRecord) -> list[str]:
    """Per backend other than the reference, in words, over all files (the record's aggregate); first the finding
    when the configured scale factor is the cause."""
    cause = vad_run.finding(record)
    return ([f"finding: {cause}"] if cause else []) + [
        f"{agg.label}: {vad_run.aggregate_verdict(agg)}"
        for b, agg in record.aggregate.items() if b != record.reference] + [
        f"saturation: {line}" for line in vad_run.saturation_lines(record)]


def verdict(record: VadRecord) -> str:
    """The verdict lines as Markdown bullets."""
    return "\n".join(f"- {line}." for line in verdict_lines(record))


def run_finding(record: VadRecord) -> Any:
    """The run's ``status.Finding``: the audio scale factor as the cause, else whether the decisions hold."""
    from gnaexp.diagnose import status

    return status.vad_finding(record, vad_run.finding(record), vad_run.AGREEMENT_OK)


def index_entry(record: VadRecord) -> IndexEntry:
    """Key figures per backend (over all files), the verdict and the status, for the batch index page."""
    rows = [MetricRow(agg.label, kind=agg.kind, output="probability",
                      cosine=agg.scores.mean_cosine if agg.scores else None,
                      sqnr_db=agg.scores.lowest_sqnr_db if agg.scores else None,
                      l1=agg.scores.mean_abs_dp if agg.scores else None)
            for b, agg in record.aggregate.items() if b != record.reference]
    return IndexEntry("silero_vad", verdict_lines(record), rows, list(record.notes), run_finding(record))


READING = ("How to read the figures: agreement is the share of chunks whose speech decision (p ≥ 0.5) is the "
           "reference's; segment precision/recall compare speech segments with the reference's or the ground "
           "truth's within ±1 chunk, so a backend identical to the reference scores what the reference scores. The "
           "FP32 model's own segments can start a chunk or two after the true onsets (on the kit's speech sample it "
           "scores P/R 0.50 against the ground truth at ±1 chunk): judge a GNA backend against the reference first. "
           "A state SQNR near 10 dB matters only when the decisions disagree.")
YOUR_DEVICE = ("Your device: stream the same audio on the GNA machine (openvino:GNA in backends there), take its "
               "tracks.npz home and add import:tracks.npz after the reference in backends; its rows are labelled "
               "imported.")


def finding(record: VadRecord) -> HTML:
    """The report's first screen: status, verdict and next step, the run's parameters, every backend's verdict."""
    from gnaexp.diagnose import status
    from gnaexp.present.markup import key_value_rows

    emu = record.emulated_settings()
    params = {"audio": ", ".join(f.file for f in record.files), "backends": ", ".join(record.backends),
              "reference": record.reference,
              "scale factors (GNA)":
                  ", ".join(f"{k} {v:g}" for k, v in (emu.get("scale_factors") or {}).items()) or "–",
              "precision": emu.get("precision", "–"),
              "GNA plugin release (emulated)": emu.get("plugin_release", "–"),
              "recommended audio scale factor": f"{record.recommended_scale_factor or 0:.6g}"}
    return HTML(status.finding_html(run_finding(record), (), verdict_lines(record))
                + f"<table class='gnaexp-setting'>{key_value_rows(params.items())}</table>"
                f"<p class='gnaexp-note'>{escape(READING)}</p><p class='gnaexp-note'>{escape(YOUR_DEVICE)}</p>")


def environment_table(record: VadRecord) -> HTML:
    from gnaexp.present.markup import key_value_rows

    env = record.environment
    items = [(k, v) for k, v in env.items() if not isinstance(v, (dict, list))]
    items += [("device settings", record.device_settings), ("files", [f.file for f in record.files])]
    return HTML(f"<table>{key_value_rows(items)}</table>")
