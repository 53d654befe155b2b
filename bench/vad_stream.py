"""Streaming Silero VAD: the emulator (streams batched) against OpenVINO CPU FP32 on the same chunks.

An hour of 16 kHz audio (112,500 chunks by default) is made from the speech sample in data/speech (tiled, each
stream starting at another offset) and cut into ``--streams`` streams of equal length. Printed, each side in
its own warm loop over the same chunks:
- OpenVINO CPU FP32: one stream at a time, one inference per chunk, state carried (how a device streams);
- the emulator: all streams together, one plan run per time step over every stream;
- their ratio, the emulator's one-stream latency per chunk, and whether the batched emulator is bit-identical
  to streaming each stream alone (checked on ``--check`` streams).
Run: python bench/vad_stream.py [--minutes 60] [--streams 250] [--check 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from gnaexp.backends import make_backend
from gnaexp.vad import audio, run as vad_run, stream as vad

ROOT = Path(__file__).resolve().parents[1]


def _streams(minutes: float, n: int) -> list[np.ndarray]:
    sample = np.concatenate([audio.load_wav(p).samples for p in sorted((ROOT / "data" / "speech").glob("*.wav"))])
    per = int(minutes * 60 * vad.SAMPLE_RATE) // n // vad.CHUNK * vad.CHUNK
    out = []
    for i in range(n):
        start = (i * 7919 * vad.CHUNK) % len(sample)
        idx = (start + np.arange(per)) % len(sample)
        out.append(sample[idx])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--streams", type=int, default=250)
    ap.add_argument("--check", type=int, default=2, help="streams re-run alone for the bit-exactness check")
    ap.add_argument("--scale-factor", type=float, default=2048.0)
    args = ap.parse_args()
    streams = _streams(args.minutes, args.streams)
    chunks = sum(len(s) // vad.CHUNK for s in streams)
    print(f"{args.minutes:g} min of audio: {args.streams} streams × {len(streams[0]) // vad.CHUNK} chunks = {chunks} chunks")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = vad.model_bundle(Path(tmp))
        opts = vad_run.device_options({"scale_factor": args.scale_factor}, streams)
        cpu = make_backend("openvino:CPU", opts).stepper(bundle)
        emu = make_backend("gna-emu", opts).stepper(bundle)
        for s in streams[:1]:  # warm both
            vad.stream(cpu, s[:20 * vad.CHUNK])
            vad.stream_batch(emu, [x[:20 * vad.CHUNK] for x in streams])

        t = time.perf_counter()
        for s in streams:
            vad.stream(cpu, s)
        cpu_s = time.perf_counter() - t
        t = time.perf_counter()
        batched = vad.stream_batch(emu, streams)
        emu_s = time.perf_counter() - t

        one = streams[0][:400 * vad.CHUNK]
        t = time.perf_counter()
        vad.stream(emu, one)
        one_ms = 1000 * (time.perf_counter() - t) / (len(one) // vad.CHUNK)
        exact = all(
            np.array_equal(alone.probability, batched[i].probability) and np.array_equal(alone.state, batched[i].state)
            for i, alone in ((i, vad.stream(emu, streams[i])) for i in range(min(args.check, len(streams)))))

    print(f"OpenVINO CPU FP32, one stream at a time : {cpu_s:7.2f} s  ({1000 * cpu_s / chunks:.3f} ms/chunk)")
    print(f"emulator, {args.streams} streams batched        : {emu_s:7.2f} s  ({1000 * emu_s / chunks:.3f} ms/chunk)")
    print(f"emulator / OpenVINO CPU                  : {emu_s / cpu_s:.2f}×  (target ≤ 2×)")
    print(f"emulator one-stream latency              : {one_ms:.2f} ms/chunk")
    print(f"batched bit-identical to one stream alone: {exact} ({min(args.check, len(streams))} streams checked)")


if __name__ == "__main__":
    main()
