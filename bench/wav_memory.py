"""Peak memory of reading a WAV file against the file's size: the reader streams the samples in blocks.

For each size and sample rate a 16-bit mono WAV of that size is made (sparse: silence that takes no disk), and
read by ``gnaexp.vad.audio.load_wav`` in a fresh Python process. Printed per file: its duration, whether it was read
or refused (longer than ``audio.MAX_SECONDS``, refused from its header), the process's peak RSS, and how much
of that the read added over the process after its imports, next to the size of the result (float32 at 16 kHz).
The added memory is the result plus a fixed amount, whatever the file's size.
Run: python bench/wav_memory.py [--sizes 16,64,256,2048] [--rates 16000,44100] [--json]
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs in the child: imports first (their memory is the baseline), then one read; ru_maxrss is in KiB on Linux.
CHILD = """
import json, resource, sys
from gnaexp.vad import audio
import scipy.signal  # imported by a resampling read: part of the baseline, not of the read
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    samples, status = len(audio.load_wav(sys.argv[1]).samples), "read"
except ValueError as exc:
    samples, status = 0, "refused: " + str(exc).split(";")[0]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"baseline_mib": before / 1024, "peak_mib": peak / 1024, "samples": samples, "status": status}))
"""


def sparse_wav(path: Path, size: int, rate: int) -> Path:
    """A 16-bit mono WAV of ``size`` bytes whose samples are a hole in the file (zeros, no disk blocks)."""
    data = size - 44
    header = (b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE" + b"fmt " +
              struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", data))
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(size)
    return path


def measure(path: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, check=True)
    return json.loads(proc.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="16,64,256,2048", help="file sizes in MiB, comma-separated")
    ap.add_argument("--rates", default="16000,44100", help="sample rates in Hz, comma-separated")
    ap.add_argument("--json", action="store_true", help="print one JSON object per file")
    args = ap.parse_args()
    sizes = [float(s) for s in args.sizes.split(",")]
    rates = [int(r) for r in args.rates.split(",")]
    if not args.json:
        print(f"{'file MiB':>9} {'rate Hz':>8} {'minutes':>8} {'peak RSS MiB':>13} {'read added':>11} "
              f"{'result MiB':>11}  status")
    with tempfile.TemporaryDirectory() as tmp:
        for rate in rates:
            for mib in sizes:
                size = int(mib * 2**20)
                path = sparse_wav(Path(tmp) / "x.wav", size, rate)
                m = measure(path)
                row = {"file_mib": mib, "rate": rate, "minutes": (size - 44) / 2 / rate / 60,
                       "peak_mib": m["peak_mib"], "added_mib": m["peak_mib"] - m["baseline_mib"],
                       "result_mib": m["samples"] * 4 / 2**20, "status": m["status"]}
                path.unlink()
                if args.json:
                    print(json.dumps(row))
                else:
                    print(f"{mib:>9g} {rate:>8} {row['minutes']:>8.1f} {row['peak_mib']:>13.0f} "
                          f"{row['added_mib']:>11.0f} {row['result_mib']:>11.0f}  {row['status'][:60]}")


if __name__ == "__main__":
    main()
