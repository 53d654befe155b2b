"""Streaming Silero VAD: the emulator against OpenVINO CPU FP32 doing the same work, each side in its own warm loop.

An hour of 16 kHz audio (112,500 chunks by default) is made from the speech sample in data/speech (tiled, each
stream starting at another offset) and cut into ``--streams`` streams of equal length. Printed, the figures that
compare the same work first:
1. one stream, one chunk at a time: the whole audio as one stream on each side (one inference per chunk, the
   state carried), ms per chunk and the ratio (target ≤ 2×). Both sides run through the package's streaming
   engine (``stream_steps`` with each backend's stepper); OpenVINO's own infer loop without it is printed too;
2. N streams together: the emulator's step over all N streams against OpenVINO batched the same way. OpenVINO
   runs both ways it can: (a) the IR reshaped to batch N, one inference per time step, and (b) N infer requests
   in flight per time step (AsyncInferQueue, throughput hint). The ratio is taken against the faster of the two,
   named in the output: the fairer comparison is against OpenVINO at its best (target ≤ 1×). The emulator and
   (a) each run ``--repeat`` times, taking turns, and the best runs are compared ((b), ten times slower here,
   once);
3. as an extra, labelled so, the figure this bench printed first before: the emulator batched over N streams
   against OpenVINO one stream at a time (not the same work);
4. peak memory of emulating the whole audio as one stream and as N streams: the kernel's high-water resident set
   (VmHWM, reset before each run; ru_maxrss where it cannot be reset), next to the audio and the tracks the run
   returns (probability and state per chunk): streaming must not grow with the audio beyond those;
5. whether the batched emulator is bit-identical to streaming each stream alone (checked on ``--check`` streams).
The machine is usually shared: run it a few times and take the median.
Run: python bench/vad_stream.py [--minutes 60] [--streams 250] [--check 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import re
import resource
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gnaexp.backends import make_backend
from gnaexp.vad import audio, run as vad_run, stream as vad

ROOT = Path(__file__).resolve().parents[1]
CPU_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}  # as the openvino:CPU backend: the FP32 reference


def _streams(minutes: float, n: int) -> list[np.ndarray]:
    sample = np.concatenate([audio.load_wav(p).samples for p in sorted((ROOT / "data" / "speech").glob("*.wav"))])
    per = max(1, int(minutes * 60 * vad.SAMPLE_RATE) // n // vad.CHUNK) * vad.CHUNK
    out = []
    for i in range(n):
        start = (i * 7919 * vad.CHUNK) % len(sample)
        idx = (start + np.arange(per)) % len(sample)
        out.append(sample[idx])
    return out


def _openvino_batched(xml: Path, n: int) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """(a) The IR reshaped to a batch of n streams: one inference per time step for all of them."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(xml))
    model.reshape({"chunk": [n, vad.STEP_INPUT], "state": [vad.STATE_SHAPE[0], n, vad.STATE_SHAPE[2]]})
    compiled = core.compile_model(model, "CPU", CPU_CONFIG)
    request = compiled.create_infer_request()
    probability, next_state = compiled.output("probability"), compiled.output("next_state")

    def step(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # the harness's layout (N, 2, 1, 128) ↔ the model's (2, N, 128)
        result = request.infer({"chunk": feed["chunk"].reshape(n, -1),
                                "state": feed["state"].reshape(n, 2, -1).transpose(1, 0, 2)})
        return {"probability": result[probability].reshape(n, 1),
                "next_state": result[next_state].transpose(1, 0, 2)[:, :, None]}
    return step


def _openvino_requests(xml: Path, n: int) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """(b) n infer requests in flight per time step, one per stream (AsyncInferQueue, throughput hint)."""
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(xml)), "CPU", dict(CPU_CONFIG, PERFORMANCE_HINT="THROUGHPUT"))
    queue = ov.AsyncInferQueue(compiled, n)
    probability = np.empty((n, 1), dtype=np.float32)
    state = np.empty((n,) + vad.STATE_SHAPE, dtype=np.float32)

    def done(request: Any, i: int) -> None:
        probability[i] = request.get_tensor("probability").data.reshape(-1)
        state[i] = request.get_tensor("next_state").data

    queue.set_callback(done)

    def step(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for i in range(n):
            queue.start_async({"chunk": feed["chunk"][i], "state": feed["state"][i]}, i)
        queue.wait_all()
        return {"probability": probability.copy(), "next_state": state.copy()}
    return step


def _openvino_bare(xml: Path, audio_: np.ndarray) -> float:
    """Seconds of OpenVINO's own infer loop over the signal's chunks, state carried, without the streaming engine
    both sides run through (the floor of OpenVINO per chunk)."""
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(xml)), "CPU", CPU_CONFIG)
    request, next_state = compiled.create_infer_request(), compiled.output("next_state")
    frames = vad.StepChunks([audio_])
    state = np.zeros(vad.STATE_SHAPE, dtype=np.float32)
    request.infer({"chunk": frames[0], "state": state})  # warm
    start = time.perf_counter()
    for t in range(len(frames)):
        state = request.infer({"chunk": frames[t], "state": state})[next_state]
    return time.perf_counter() - start


def _rss_mb(field: str) -> float | None:
    try:
        found = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return None
    return int(found.group(1)) / 1024 if found else None


def _peak_memory(run: Callable[[], Any]) -> tuple[Any, float, float, float, str]:
    """(run's result, seconds, resident MB before, peak resident MB during): the high-water mark is reset first
    where Linux allows it (/proc/self/clear_refs), else the process's ru_maxrss (which then may be earlier's)."""
    before = _rss_mb("VmRSS") or 0.0
    try:
        Path("/proc/self/clear_refs").write_text("5")
        how = "VmHWM"
    except OSError:
        how = "ru_maxrss"
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    peak = _rss_mb("VmHWM") if how == "VmHWM" else None
    if peak is None:
        peak, how = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "ru_maxrss"
    return result, seconds, before, peak, how


def _tracks_mb(streams: list[vad.Stream]) -> float:
    return sum(s.probability.nbytes + s.state.nbytes for s in streams) / 2 ** 20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--streams", type=int, default=250)
    ap.add_argument("--check", type=int, default=2, help="streams re-run alone for the bit-exactness check")
    ap.add_argument("--scale-factor", type=float, default=2048.0)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each side for the N-stream figures (the best)")
    args = ap.parse_args()
    n = args.streams
    streams = _streams(args.minutes, n)
    whole = np.concatenate(streams)  # the same audio as one stream
    chunks = len(whole) // vad.CHUNK
    audio_mb = whole.nbytes / 2 ** 20
    print(f"{args.minutes:g} min of audio ({audio_mb:.0f} MB float32): {n} streams × {len(streams[0]) // vad.CHUNK} "
          f"chunks = {chunks} chunks")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = vad.model_bundle(Path(tmp))
        opts = vad_run.device_options({"scale_factor": args.scale_factor}, streams).backend_options()
        cpu = make_backend("openvino:CPU", opts).stepper(bundle)
        emu = make_backend("gna-emu", opts).stepper(bundle)
        ov_batched = _openvino_batched(bundle.ir_xml, n)
        ov_requests = _openvino_requests(bundle.ir_xml, n)
        warm = [s[:20 * vad.CHUNK] for s in streams]
        for one_at_a_time in (cpu, emu):
            vad.stream(one_at_a_time, warm[0])
        for together in (emu, ov_batched, ov_requests):
            vad.stream_batch(together, warm)

        t = time.perf_counter()
        vad.stream(cpu, whole)
        cpu1_s = time.perf_counter() - t
        bare_s = _openvino_bare(bundle.ir_xml, whole)
        one, emu1_s, one_before, one_peak, how = _peak_memory(lambda: [vad.stream(emu, whole)])
        t = time.perf_counter()
        vad.stream_batch(ov_requests, streams)
        ov_requests_s = time.perf_counter() - t
        # N streams: each side's own loop of --repeat runs, the two sides taking turns (a shared machine's slow
        # spell then falls on both); the best run of each side is the figure, every run printed. Not the median:
        # a run whose tracks land in memory the process has not touched yet pays its first page faults (here
        # about 0.27 s, a fifth to a half of a run), and which runs do depends on which results are still held,
        # so it falls on the two sides unevenly
        ov_runs, emu_runs = [], []
        for repeat in range(args.repeat):
            t = time.perf_counter()
            ov_streams = vad.stream_batch(ov_batched, streams)
            ov_runs.append(time.perf_counter() - t)
            if repeat == 0:  # the peak memory: the first run, its high-water mark reset before
                batched, seconds, n_before, n_peak, how_n = _peak_memory(lambda: vad.stream_batch(emu, streams))
            else:
                t = time.perf_counter()
                vad.stream_batch(emu, streams)
                seconds = time.perf_counter() - t
            emu_runs.append(seconds)
        ov_batched_s, emun_s = min(ov_runs), min(emu_runs)
        checked = min(args.check, n)
        exact = all(
            np.array_equal(alone.probability, batched[i].probability) and np.array_equal(alone.state, batched[i].state)
            for i, alone in ((i, vad.stream(emu, streams[i])) for i in range(checked)))
        # (a) is the same work: each stream's numbers as OpenVINO gives them one stream at a time
        ov_delta = max(float(np.max(np.abs(vad.stream(cpu, streams[i]).probability - ov_streams[i].probability)))
                       for i in range(checked))

    best, best_s = ("(a) IR reshaped to batch N, one inference per step", ov_batched_s)
    if ov_requests_s < ov_batched_s:
        best, best_s = ("(b) N infer requests per step (AsyncInferQueue)", ov_requests_s)

    def line(label: str, seconds: float) -> None:
        print(f"  {label:<42}: {seconds:7.2f} s  ({1000 * seconds / chunks:.3f} ms/chunk)")

    print("one stream, one chunk at a time (the whole audio as one stream, state carried):")
    line("OpenVINO CPU FP32", cpu1_s)
    line("emulator", emu1_s)
    print(f"  {'emulator / OpenVINO, one stream':<42}: {emu1_s / cpu1_s:.2f}×  (target ≤ 2×)")
    line("OpenVINO's bare infer loop (no engine)", bare_s)
    print(f"  {'emulator / that bare loop':<42}: {emu1_s / bare_s:.2f}×  (both sides above stream through "
          "backends.base.stream_steps)")
    print(f"{n} streams together, one time step for all of them:")
    def runs(seconds: list[float]) -> str:
        return f"best of {len(seconds)} runs: " + ", ".join(f"{s:.2f}" for s in seconds) + " s"

    line(f"OpenVINO (a) the IR reshaped to batch {n}", ov_batched_s)
    print(f"  {'':<42}  {runs(ov_runs)}")
    line(f"OpenVINO (b) {n} infer requests a step", ov_requests_s)
    line(f"emulator, {n} streams batched", emun_s)
    print(f"  {'':<42}  {runs(emu_runs)}")
    print(f"  {f'emulator / OpenVINO, {n} streams':<42}: {emun_s / best_s:.2f}×  (target ≤ 1×; against the faster "
          f"OpenVINO: {best})")
    print("extra, not the same work (this bench's former headline):")
    print(f"  emulator {n} streams batched / OpenVINO one stream at a time: {emun_s / cpu1_s:.2f}×")
    print(f"peak memory emulating all {args.minutes:g} min ({how_n if how == how_n else how + '/' + how_n}; "
          f"the audio is {audio_mb:.0f} MB):")
    print(f"  one stream : peak {one_peak:6.0f} MB, {one_peak - one_before:+5.0f} MB over the {one_before:.0f} MB "
          f"before; its tracks {_tracks_mb(one):.0f} MB")
    print(f"  {n} streams: peak {n_peak:6.0f} MB, {n_peak - n_before:+5.0f} MB over the {n_before:.0f} MB "
          f"before; their tracks {_tracks_mb(batched):.0f} MB")
    print(f"batched bit-identical to one stream alone: {exact} ({checked} stream(s) checked)")
    print(f"OpenVINO (a) against one stream at a time: max |Δ probability| {ov_delta:.2g} (same streams)")


if __name__ == "__main__":
    main()
