"""Make the speech sample: espeak-ng sentences placed in silence, white noise at a few SNRs, 16 kHz mono WAV.

Run from the repository root with espeak-ng installed (Debian: apt-get install espeak-ng):
    python data/speech/make_speech.py
Writes data/speech/*.wav and data/speech/segments.json (ground truth: where each synthesized utterance sits,
trimmed to its first and last sample above -60 dBFS). Same script, same espeak-ng version → same files.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from gnaexp.vad.audio import PCM, TARGET_RATE, load_wav  # noqa: E402
from gnaexp.core.files import atomic_write_bytes  # noqa: E402

HERE = Path(__file__).resolve().parent
FILES = {  # name: (SNR dB, voice, [(gap before in s, sentence)], trailing silence in s)
    "speech_snr20": (20, "en-us", [(1.0, "The quick brown fox jumps over the lazy dog."),
                                   (1.2, "Voice activity detection finds speech in audio.")], 1.0),
    "speech_snr10": (10, "en-gb", [(0.8, "Please turn on the lights in the kitchen."),
                                   (1.5, "Set a timer for ten minutes.")], 1.0),
    "speech_snr5": (5, "en-us", [(1.0, "What is the weather like tomorrow morning?"),
                                 (1.0, "Call me back when you are ready.")], 1.2),
}



def write_wav(path: str | Path, samples: np.ndarray, rate: int = TARGET_RATE) -> None:
    """16-bit PCM mono, written atomically."""
    path = Path(path)
    q = np.clip(np.round(np.asarray(samples, dtype=np.float64) * 32767), -32768, 32767).astype("<i2")
    data = q.tobytes()
    header = (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " +
              struct.pack("<IHHIIHH", 16, PCM, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", len(data)))
    atomic_write_bytes(path, header + data)

def synthesize(text: str, voice: str) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(wav), text], check=True)
        x = load_wav(wav).samples  # resampled from espeak-ng's 22050 Hz
    loud = np.flatnonzero(np.abs(x) > 1e-3)
    return x[loud[0]:loud[-1] + 1]


def main() -> None:
    truth = {}
    for i, (name, (snr, voice, parts, tail)) in enumerate(FILES.items()):
        pieces, segments, t = [], [], 0
        for gap, text in parts:
            pieces.append(np.zeros(int(gap * TARGET_RATE), np.float32))
            t += len(pieces[-1])
            speech = 0.5 * synthesize(text, voice) / 0.9
            segments.append([round(t / TARGET_RATE, 4), round((t + len(speech)) / TARGET_RATE, 4)])
            pieces.append(speech.astype(np.float32))
            t += len(speech)
        pieces.append(np.zeros(int(tail * TARGET_RATE), np.float32))
        clean = np.concatenate(pieces)
        speech_power = np.mean(np.concatenate([p for p in pieces if np.any(p)]) ** 2)
        noise = np.random.default_rng(i).normal(0, np.sqrt(speech_power / 10 ** (snr / 10)), clean.shape)
        write_wav(HERE / f"{name}.wav", np.clip(clean + noise, -1, 1))
        truth[f"{name}.wav"] = {"snr_db": snr, "voice": voice, "speech": segments,
                                "text": [text for _, text in parts]}
    (HERE / "segments.json").write_text(json.dumps(truth, indent=1) + "\n")


if __name__ == "__main__":
    main()
