"""Audio files in and out: 16 kHz mono WAV, checked before any model sees it.

Reads RIFF/WAVE with PCM 8/16/24/32-bit integer or 32/64-bit float samples (the formats common tools write).
Other sample rates are resampled to 16 kHz (band-limited, by FFT) and the caller is told so; more than one
channel, an empty or too short file, or NaN/Inf samples are refused with the fix.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gnaexp.files import atomic_write_bytes

TARGET_RATE = 16000
MIN_SAMPLES = 512  # one VAD step
PCM, FLOAT, EXTENSIBLE = 1, 3, 0xFFFE


@dataclass
class Audio:
    samples: np.ndarray  # float32 in [-1, 1], mono, TARGET_RATE
    rate: int
    source_rate: int
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate


def _chunks(blob: bytes, name: str) -> dict[bytes, bytes]:
    if len(blob) < 12 or blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise ValueError(f"{name} is not a WAV file (no RIFF/WAVE header): convert it to 16 kHz mono WAV, e.g. "
                         f"ffmpeg -i {name} -ac 1 -ar 16000 out.wav")
    out, pos = {}, 12
    while pos + 8 <= len(blob):
        cid, size = blob[pos:pos + 4], struct.unpack("<I", blob[pos + 4:pos + 8])[0]
        out.setdefault(cid, blob[pos + 8:pos + 8 + size])
        pos += 8 + size + (size & 1)
    return out


def _decode(fmt: bytes, data: bytes, name: str) -> tuple[np.ndarray, int, int]:
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack("<H", fmt[24:26])[0]
    width = bits // 8
    if tag == PCM and bits in (8, 16, 24, 32):
        raw = np.frombuffer(data[:len(data) - len(data) % (width * channels)], dtype=np.uint8)
        if bits == 8:
            x = (raw.astype(np.float32) - 128) / 128
        elif bits == 24:
            b = raw.reshape(-1, 3).astype(np.int32)
            v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
            x = (np.where(v >= 2**23, v - 2**24, v) / 2**23).astype(np.float32)
        else:
            x = np.frombuffer(raw.tobytes(), dtype=f"<i{width}").astype(np.float32) / float(2 ** (bits - 1))
    elif tag == FLOAT and bits in (32, 64):
        x = np.frombuffer(data[:len(data) - len(data) % (width * channels)], dtype=f"<f{width}").astype(np.float32)
    else:
        raise ValueError(f"{name}: WAV sample format {tag} with {bits} bits is not supported; use 16-bit PCM, e.g. "
                         f"ffmpeg -i {name} -ac 1 -ar 16000 -sample_fmt s16 out.wav")
    return x.reshape(-1, channels), channels, rate


def resample(x: np.ndarray, rate_from: int, rate_to: int) -> np.ndarray:
    """Band-limited resampling of a whole signal by FFT (zero-padding or truncating the spectrum)."""
    if rate_from == rate_to:
        return np.asarray(x, dtype=np.float32)
    n_out = int(round(len(x) * rate_to / rate_from))
    spec = np.fft.rfft(np.asarray(x, dtype=np.float64))
    keep = min(len(spec), n_out // 2 + 1)
    out = np.zeros(n_out // 2 + 1, dtype=complex)
    out[:keep] = spec[:keep]
    return (np.fft.irfft(out, n_out) * (n_out / len(x))).astype(np.float32)


def load_wav(path: str | Path) -> Audio:
    """A mono 16 kHz float32 signal from a WAV file, or ValueError naming the problem and the fix."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"audio file {path} does not exist")
    chunks = _chunks(path.read_bytes(), path.name)
    if b"fmt " not in chunks or b"data" not in chunks:
        raise ValueError(f"{path.name}: WAV without a fmt or data chunk (truncated?); export it again as WAV")
    x, channels, rate = _decode(chunks[b"fmt "], chunks[b"data"], path.name)
    if channels != 1:
        raise ValueError(f"{path.name} has {channels} channels; the VAD takes mono audio: mix it down, e.g. "
                         f"ffmpeg -i {path.name} -ac 1 -ar 16000 mono.wav")
    x = x[:, 0]
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{path.name}: {int(np.sum(~np.isfinite(x)))} samples are NaN or Inf; fix the recording")
    notes = []
    if rate != TARGET_RATE:
        if rate < 8000:
            raise ValueError(f"{path.name} is sampled at {rate} Hz, below 8 kHz: too little bandwidth for speech; "
                             "record at 16 kHz")
        x = resample(x, rate, TARGET_RATE)
        notes.append(f"{path.name}: resampled from {rate} Hz to {TARGET_RATE} Hz")
    if len(x) < MIN_SAMPLES:
        raise ValueError(f"{path.name} has {len(x)} samples at 16 kHz; at least {MIN_SAMPLES} (32 ms) are needed")
    return Audio(np.ascontiguousarray(x, dtype=np.float32), TARGET_RATE, rate, notes)


def write_wav(path: str | Path, samples: np.ndarray, rate: int = TARGET_RATE) -> None:
    """16-bit PCM mono, written atomically."""
    path = Path(path)
    q = np.clip(np.round(np.asarray(samples, dtype=np.float64) * 32767), -32768, 32767).astype("<i2")
    data = q.tobytes()
    header = (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " +
              struct.pack("<IHHIIHH", 16, PCM, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", len(data)))
    atomic_write_bytes(path, header + data)
