"""Audio files in and out: 16 kHz mono WAV, checked before any model sees it.

Reads RIFF/WAVE with PCM 8/16/24/32-bit integer or 32/64-bit float samples (the formats common tools write).
Every header field the reader uses is checked, and the data chunk's size against the file, before a sample is
read; a file that is not a regular file (a folder, a broken link), or whose name is not UTF-8, is refused too.

The samples are read in blocks and decoded (and, at other rates, resampled to 16 kHz) into one float32 array,
so reading needs the result plus a fixed amount of memory; a file longer than ``MAX_SECONDS`` is refused from
its header, which bounds the whole (see bench/wav_memory.py). More than one channel, an empty or too short file,
or NaN/Inf samples are refused with the fix.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
from gnaexp.core.errors import BadInput


TARGET_RATE = 16000
MIN_SAMPLES = 512  # one VAD step
MIN_RATE, MAX_RATE = 8000, 768000  # below 8 kHz speech loses its bandwidth; above 768 kHz no recorder writes
MAX_SECONDS = 3600  # the samples are held in memory (230 MB at 16 kHz): longer recordings are split
PCM, FLOAT, EXTENSIBLE = 1, 3, 0xFFFE
BLOCK_BYTES = 1 << 22  # read 4 MiB of sample data at a time
MAX_FMT_BYTES = 1 << 16  # a fmt chunk is 16, 18 or 40 bytes; anything this large is not one


@dataclass
class Audio:
    samples: np.ndarray  # float32 in [-1, 1], mono, TARGET_RATE
    rate: int
    source_rate: int
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate


@dataclass(frozen=True)
class _Format:
    tag: int  # PCM or FLOAT
    rate: int
    bits: int
    data_offset: int  # where the samples start in the file
    frames: int  # whole frames in the data chunk


def _convert_hint(name: str) -> str:
    return f"export it again as 16 kHz mono WAV, e.g. ffmpeg -i {name} -ac 1 -ar 16000 out.wav"


def shown_name(path: Path) -> str:
    """A file's name as text (bytes that are not UTF-8 shown as �)."""
    return os.fsencode(path.name).decode("utf-8", "replace")


def _open(path: Path) -> BinaryIO:
    """The file opened for reading, or an error naming what is in the way (the CLI maps both to exit 2)."""
    name = shown_name(path)
    try:
        path.name.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput(f"audio file name {name!r} is not UTF-8 (records and reports store the name): rename the "
                         "file, e.g. to ASCII letters and digits") from None
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BadInput(f"audio file {name} is a symbolic link that loops back on itself: replace it with the "
                             "file or a link to it") from None
        if exc.errno == errno.ENOENT:
            link = f" (a symbolic link to {os.readlink(path)}, which does not exist)" if path.is_symlink() else ""
            raise BadInput(f"audio file {path} does not exist{link}: check the path") from None
        raise  # permissions and the like: the CLI names the path and the fix
    if stat.S_ISDIR(mode):
        raise BadInput(f"audio file {name} is a folder, not a WAV file: give the .wav files inside it, or move "
                         f"the folder out of {path.parent.name or '.'}")
    if not stat.S_ISREG(mode):  # a pipe would block the read, a device never end
        raise BadInput(f"audio file {name} is not a regular file (a pipe or a device): save the audio to a "
                         ".wav file and give that")
    return open(path, "rb")  # noqa: SIM115 — the caller closes it


def _read_header(f: BinaryIO, name: str) -> _Format:
    """The format and where the samples are, every field checked; nothing of the samples is read."""
    size = os.fstat(f.fileno()).st_size
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise BadInput(f"{name} is not a WAV file (no RIFF/WAVE header): convert it to 16 kHz mono WAV, e.g. "
                         f"ffmpeg -i {name} -ac 1 -ar 16000 out.wav")
    # The RIFF size field is not trusted (writers that stream leave it unset); each chunk is checked instead.
    fmt, data = None, None
    pos = 12
    while pos + 8 <= size and (fmt is None or data is None):
        f.seek(pos)
        cid, length = struct.unpack("<4sI", f.read(8))
        if cid == b"fmt " and fmt is None:
            if length > MAX_FMT_BYTES or pos + 8 + length > size:
                raise BadInput(f"{name}: its fmt chunk claims {length} bytes (damaged header): {_convert_hint(name)}")
            fmt = f.read(length)
        elif cid == b"data" and data is None:
            data = (pos + 8, length)
        pos += 8 + length + (length & 1)
    if fmt is None or data is None:
        raise BadInput(f"{name}: WAV without a fmt or data chunk (truncated?): {_convert_hint(name)}")
    if len(fmt) < 16:
        raise BadInput(f"{name}: its fmt chunk is {len(fmt)} bytes, a WAV's is at least 16 (damaged header): "
                         f"{_convert_hint(name)}")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack("<HHIIHH", fmt[:16])
    # _byte_rate is redundant (rate × block_align) and not used: some writers get it wrong, harmlessly.
    if tag == EXTENSIBLE:
        if len(fmt) < 40:
            raise BadInput(f"{name}: its extensible fmt chunk is {len(fmt)} bytes, 40 expected (damaged header): "
                             f"{_convert_hint(name)}")
        tag = struct.unpack("<H", fmt[24:26])[0]  # the sub-format GUID starts with the format tag
    if channels == 0:
        raise BadInput(f"{name}: its header says 0 channels (damaged header): {_convert_hint(name)}")
    if channels != 1:
        raise BadInput(f"{name} has {channels} channels; the VAD takes mono audio: mix it down, e.g. "
                         f"ffmpeg -i {name} -ac 1 -ar 16000 mono.wav")
    if not ((tag == PCM and bits in (8, 16, 24, 32)) or (tag == FLOAT and bits in (32, 64))):
        raise BadInput(f"{name}: WAV sample format {tag} with {bits} bits is not supported; use 16-bit PCM, e.g. "
                         f"ffmpeg -i {name} -ac 1 -ar 16000 -sample_fmt s16 out.wav")
    if block_align != bits // 8:
        raise BadInput(f"{name}: its header says {block_align} bytes per frame, but one channel of {bits}-bit "
                         f"samples takes {bits // 8} (damaged header): {_convert_hint(name)}")
    if rate == 0 or rate > MAX_RATE:
        raise BadInput(f"{name}: its header says {rate} Hz; WAV files are sampled at {MIN_RATE}–{MAX_RATE} Hz "
                         f"(damaged header): {_convert_hint(name)}")
    if rate < MIN_RATE:
        raise BadInput(f"{name} is sampled at {rate} Hz, below 8 kHz: too little bandwidth for speech; "
                         "record at 16 kHz")
    offset, length = data
    if offset + length > size:
        raise BadInput(f"{name}: its data chunk claims {length} bytes but the file holds {max(0, size - offset)} "
                         f"after the header (a truncated copy, or sizes a streaming writer left unset): copy the "
                         f"file whole, or {_convert_hint(name)}")
    frames = length // block_align
    if frames > MAX_SECONDS * rate:
        raise BadInput(f"{name} lasts {frames / rate / 3600:.1f} h; gnaexp reads at most {MAX_SECONDS // 60} "
                         f"minutes per file (the samples are held in memory): split it, e.g. ffmpeg -i {name} -ac 1 "
                         f"-ar 16000 -f segment -segment_time {MAX_SECONDS} part%03d.wav")
    return _Format(tag, rate, bits, offset, frames)


def _decode(raw: bytes, fmt: _Format) -> np.ndarray:
    """Whole frames of raw sample bytes as float32 in [-1, 1] (float samples as stored)."""
    if fmt.tag == FLOAT:
        return np.frombuffer(raw, dtype=f"<f{fmt.bits // 8}").astype(np.float32)
    if fmt.bits == 8:
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128) / 128
    if fmt.bits == 24:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        return (np.where(v >= 2**23, v - 2**24, v) / 2**23).astype(np.float32)
    return np.frombuffer(raw, dtype=f"<i{fmt.bits // 8}").astype(np.float32) / np.float32(2 ** (fmt.bits - 1))


def _frames(f: BinaryIO, fmt: _Format, start: int, stop: int, name: str) -> np.ndarray:
    width = fmt.bits // 8
    f.seek(fmt.data_offset + start * width)
    raw = f.read((stop - start) * width)
    if len(raw) != (stop - start) * width:  # the file shrank while it was read
        raise BadInput(f"{name} ended early while it was read (changed on disk?): read it again")
    x = _decode(raw, fmt)
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        raise BadInput(f"{name}: {bad} samples are NaN or Inf (from sample {start + int(np.argmax(~np.isfinite(x)))}"
                         "); fix the recording")
    return x


def _ratio(rate: int) -> tuple[int, int]:
    """(up, down) of the resampling to 16 kHz; an unusual rate's ratio is approximated by small terms (well
    under 0.01 %), which keeps the filter short."""
    r = Fraction(TARGET_RATE, rate).limit_denominator(1000)
    return r.numerator, r.denominator


@lru_cache(maxsize=8)
def _lowpass(up: int, down: int) -> np.ndarray:
    """scipy's resample_poly filter (Kaiser-windowed sinc, 10 zero crossings each side at the lower rate)."""
    from scipy.signal import firwin

    half = 10 * max(up, down)
    return firwin(2 * half + 1, 1.0 / max(up, down), window=("kaiser", 5.0))


def _read_samples(f: BinaryIO, fmt: _Format, name: str) -> np.ndarray:
    """The samples at 16 kHz, decoded (and resampled) one block at a time into one array."""
    width = fmt.bits // 8
    block = max(1, BLOCK_BYTES // width)
    if fmt.rate == TARGET_RATE:
        out = np.empty(fmt.frames, dtype=np.float32)
        for start in range(0, fmt.frames, block):
            stop = min(fmt.frames, start + block)
            out[start:stop] = _frames(f, fmt, start, stop, name)
        return out
    from scipy.signal import resample_poly

    up, down = _ratio(fmt.rate)
    h = _lowpass(up, down)
    # Polyphase filtering is local: an output sample needs the input within the filter's half-length of it, so
    # blocks that start on a multiple of ``down`` input frames, read with that margin each side, give exactly
    # the samples a filter over the whole signal gives.
    margin = -(-((len(h) - 1) // 2) // up) + 1
    margin = -(-margin // down) * down
    step = max(1, block // down) * down
    n_out = -(-fmt.frames * up // down)
    out = np.empty(n_out, dtype=np.float32)
    for start in range(0, fmt.frames, step):
        stop = min(fmt.frames, start + step)
        lo, hi = max(0, start - margin), min(fmt.frames, stop + margin)
        y = resample_poly(_frames(f, fmt, lo, hi, name), up, down, window=h)
        first, last = start * up // down, (-(-stop * up // down) if stop == fmt.frames else stop * up // down)
        offset = lo * up // down
        out[first:last] = y[first - offset:last - offset]
    return out


def load_wav(path: str | Path) -> Audio:
    """A mono 16 kHz float32 signal from a WAV file, or ValueError naming the problem and the fix."""
    path = Path(path)
    name = shown_name(path)
    with _open(path) as f:
        fmt = _read_header(f, name)
        up, down = _ratio(fmt.rate)
        if -(-fmt.frames * up // down) < MIN_SAMPLES:
            raise BadInput(f"{name} has {-(-fmt.frames * up // down)} samples at 16 kHz; at least {MIN_SAMPLES} "
                             "(32 ms) are needed")
        x = _read_samples(f, fmt, name)
    notes = []
    if fmt.rate != TARGET_RATE:
        exact = Fraction(up, down) == Fraction(TARGET_RATE, fmt.rate)
        notes.append(f"{name}: resampled from {fmt.rate} Hz to {TARGET_RATE} Hz"
                     + ("" if exact else f" (by the ratio {up}/{down}, {fmt.rate * up / down:.2f} Hz)"))
    return Audio(x, TARGET_RATE, fmt.rate, notes)

