"""Post-training quantization with NNCF — the successor of OpenVINO's POT — into FakeQuantize-hinted IRs.

The GNA plugin turns the FakeQuantize ranges of such an IR into scale factors (input sf from the input FQ,
weight sf from the weight FQ), overriding the configured input scale factor.

How POT's GNA target was configured, and how it maps onto NNCF 3.4 here
(POT hardware config ``tools/pot/openvino/tools/pot/configs/hardware/gna.json``; ``gna3.json`` for GNA 3.x):

| POT GNA config | meaning | NNCF setting used here |
|---|---|---|
| activations ``q16_a``: 16 bit, symmetric, per-tensor, levels −32768…32767 | signed 65536-level FQ | ``num_bits=16``, SYMMETRIC, per-tensor; then ranges made signed (below) |
| Convolution weights ``q16_w``: 16 bit, symmetric, per-tensor, −32767…32767 | 65535-level FQ | ``num_bits=16``, SYMMETRIC, per-tensor |
| MatMul weights ``q8_w``: 8 bit, symmetric, **per-channel**, −127…127 (or q16_w) | 255-level FQ per output row | ``num_bits=8``, SYMMETRIC, per-channel |
| GNA3 config: Convolution may also take q8_a / q8_w | 8-bit activations on GNA 3.x | ``activation_bits=8`` |
| **Result** activations ``q16_a`` | a signed 65536-level FQ on the network output, range from calibration | NNCF does not quantize outputs: gnaexp inserts it (``output_fake_quantize``) |

The output FakeQuantize matters on GNA: the plugin reads its range as the last layer's *output statistics*,
caps the bias scale and shrinks the weight scale so that max|y|·out_sf fits int32, and runs the FQ itself as an
identity PWL (scale capped at the activation limit). Without it, 16-bit weights on 16-bit inputs at full scale
saturate the int32 accumulator. ``output_fake_quantize=False`` (``gnaexp quantize --no-output-fq``) leaves it
out to show that difference.

NNCF picks an *unsigned* activation range [0, h] when the calibration data is non-negative, and refuses
``signedness_to_force=True`` with these settings. POT's GNA config is signed (−32768…32767), and the GNA
plugin derives the input scale factor as (levels − 1)/(high − low) and stores int16: an unsigned 65536-level
range would put half the codes above 32767. So, by default (``signed_activations=True``), gnaexp rewrites each
unsigned activation FakeQuantize to POT's signed symmetric form [−h, h] with the same levels, and says so in
the notes. ``signed_activations=False`` keeps NNCF's ranges as written.

Differences that NNCF cannot remove, reported in every result's ``notes``:
- NNCF has no GNA target device; the settings above are given explicitly with target ANY.
- NNCF writes 8-bit weights as an int8 Constant → Convert → Multiply(scale) "decompression" pattern, not as a
  255-level FakeQuantize on float weights as POT did. The values are the same; gnaexp's emulator reads this
  pattern as 8-bit weight statistics. A GNA plugin (2023.x) expects POT's form.
- POT's GNA config gives convolutions only 16-bit weights (gna.json); asking for 8-bit convolution weights
  follows gna3.json (GNA 3.x).
- POT's DefaultQuantization applied a fast bias correction. NNCF's, on the forum conv with 16-bit
  quantization and 32 calibration samples, moved the biases by about 2e-3 — ten times the quantization error
  it is meant to cancel — so gnaexp turns it off by default (``bias_correction=True`` turns it on).
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from gnaexp.core import inputs as inputs_mod
from gnaexp.core.files import portable_path
from gnaexp.core.errors import BadInput
from gnaexp.core.gna_settings import QUANTIZE_BITS

SUPPORTED_BITS = QUANTIZE_BITS


@dataclass(frozen=True)
class QuantizationSettings:
    activation_bits: int = 16
    weight_bits: int = 16
    calibration_size: int = 32
    calibration_seed: int = 0
    calibration_kind: str = "uniform01"
    calibration_amplitude: float = 1.0
    calibration_file: str = ""  # .npy/.npz of the user's own samples, [N, *input shape]
    signed_activations: bool = True  # rewrite NNCF's unsigned activation ranges into POT's signed form
    bias_correction: bool = False  # NNCF's fast bias correction (POT's default was on; see module notes)
    output_fake_quantize: bool = True  # POT's GNA config quantized the Result (q16_a); NNCF does not
    ignored_names: tuple[str, ...] = ()  # layers kept in float (NNCF's IgnoredScope names: friendly names)

    def validate(self) -> None:
        for name in ("activation_bits", "weight_bits"):
            if getattr(self, name) not in SUPPORTED_BITS:
                raise BadInput(f"{name} must be 8 or 16, got {getattr(self, name)}")
        if self.calibration_size < 1:
            raise BadInput(f"calibration_size must be at least 1, got {self.calibration_size}")
        if not self.calibration_file and self.calibration_kind not in inputs_mod.INPUT_KINDS:
            raise BadInput(f"unknown calibration_kind {self.calibration_kind!r}; valid: "
                             f"{', '.join(inputs_mod.INPUT_KINDS)}")

    def tag(self) -> str:
        return (f"a{self.activation_bits}w{self.weight_bits}" + ("-bc" if self.bias_correction else "")
                + ("" if self.signed_activations else "-unsigned") + ("" if self.output_fake_quantize else "-noout"))


def mapping_notes(settings: QuantizationSettings) -> list[str]:
    """What of POT's GNA configuration NNCF cannot express for these settings."""
    notes = ["NNCF has no GNA target device: POT's GNA settings are given explicitly (symmetric, per-tensor "
             "activations, signed)."]
    if settings.weight_bits == 8:
        notes.append("8-bit weights are written as int8 Constant → Convert → Multiply (NNCF), not as a 255-level "
                     "FakeQuantize (POT); values are the same.")
        notes.append("POT's GNA config gives convolutions 16-bit weights only; 8-bit convolution weights follow "
                     "its GNA 3.x config.")
    if settings.activation_bits == 8:
        notes.append("8-bit activations exist only in POT's GNA 3.x config (convolution inputs).")
    if settings.signed_activations:
        notes.append("Activation FakeQuantize ranges NNCF made unsigned [0, h] are rewritten to POT's signed "
                     "symmetric [−h, h] (same levels), as POT's GNA config (q16_a: −32768…32767) specified.")
    else:
        notes.append("Activation ranges are kept as NNCF wrote them (possibly unsigned [0, h]); the GNA plugin "
                     "maps them to int16 with sf = (levels − 1)/(high − low), which saturates codes above 32767.")
    if settings.output_fake_quantize:
        notes.append("The network output gets a signed 65536-level FakeQuantize with the calibration set's output "
                     "range [−h, h], as POT's GNA config did (Result: q16_a); NNCF quantizes no outputs.")
    else:
        notes.append("No FakeQuantize on the network output (POT's GNA config had one): the GNA plugin then has no "
                     "output statistics for the last layer, and its int32 accumulator may saturate.")
    if settings.bias_correction:
        notes.append("Fast bias correction is applied (as POT's DefaultQuantization did): biases differ from the "
                     "float net.")
    else:
        notes.append("Bias correction is off (POT's DefaultQuantization had it on): with 16-bit quantization "
                     "NNCF's correction moved the forum conv's biases by ~2e-3, more than the error it corrects.")
    return notes


# --- calibration data -----------------------------------------------------------------------------------

def calibration_set(settings: QuantizationSettings, input_shapes: Mapping[str, tuple[int, ...]]) -> list[dict[str, np.ndarray]]:
    """Calibration samples, one dict per sample. Generated from a seed, or loaded from the user's file."""
    if settings.calibration_file:
        return load_calibration(settings.calibration_file, input_shapes)
    samples: list[dict[str, np.ndarray]] = []
    for name, shape in input_shapes.items():
        batch = inputs_mod.generate_batch(settings.calibration_kind, shape, settings.calibration_size,
                                          seed=settings.calibration_seed, amplitude=settings.calibration_amplitude)
        for i in range(settings.calibration_size):
            if len(samples) <= i:
                samples.append({})
            samples[i][name] = batch[i]
    return samples


def load_calibration(path: str | Path, input_shapes: Mapping[str, tuple[int, ...]]) -> list[dict[str, np.ndarray]]:
    """Load [N, *shape] samples from .npy (one input) or .npz (keyed by input name) and validate them."""
    path = Path(path)
    arrays = inputs_mod.read_arrays(path, list(input_shapes), what="calibration file")
    counts = set()
    for name, arr in arrays.items():
        shape = tuple(input_shapes[name])
        if arr.ndim == len(shape):  # a single sample without the leading N axis
            arr = arr[None]
            arrays[name] = arr
        if arr.shape[0] == 0:
            raise BadInput(f"calibration file {path.name} is empty for input {name!r}: give at least one sample")
        inputs_mod.validate(f"{name} (calibration)", arr, shape, batched=True)
        counts.add(arr.shape[0])
    if len(counts) > 1:
        raise BadInput(f"calibration inputs have different sample counts {sorted(counts)}; give the same N for each")
    n = counts.pop()
    return [{name: arr[i].astype(np.float32) for name, arr in arrays.items()} for i in range(n)]


def calibration_fingerprint(samples: Sequence[Mapping[str, np.ndarray]]) -> str:
    h = hashlib.sha256()
    for s in samples:
        h.update(inputs_mod.fingerprint(s).encode())
    return h.hexdigest()[:16]


# --- quantization ---------------------------------------------------------------------------------------

@dataclass
class QuantizationResult:
    float_xml: Path
    quantized_xml: Path
    settings: QuantizationSettings
    calibration_fingerprint: str
    calibration_count: int
    fake_quantize: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    def to_json(self, relative_to: Path | None = None) -> dict[str, Any]:
        def rel(p: Path) -> str:
            return os.path.relpath(p, relative_to).replace(os.sep, "/") if relative_to else p.name

        return {"float_ir": rel(self.float_xml), "quantized_ir": rel(self.quantized_xml),
                "settings": dict(asdict(self.settings), calibration_file=portable_path(self.settings.calibration_file)
                                 if self.settings.calibration_file else ""), "calibration_fingerprint": self.calibration_fingerprint,
                "calibration_count": self.calibration_count, "fake_quantize": self.fake_quantize,
                "notes": self.notes, "duration_s": self.duration_s}


def _nncf_parameters(settings: QuantizationSettings) -> Any:
    from nncf.common.quantization.structs import QuantizationScheme
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, QuantizationParameters

    return AdvancedQuantizationParameters(
        disable_bias_correction=not settings.bias_correction,
        activations_quantization_params=QuantizationParameters(
            num_bits=settings.activation_bits, mode=QuantizationScheme.SYMMETRIC, per_channel=False),
        weights_quantization_params=QuantizationParameters(
            num_bits=settings.weight_bits, mode=QuantizationScheme.SYMMETRIC,
            per_channel=settings.weight_bits == 8),
    )


def quantize_ir(float_xml: str | Path, out_xml: str | Path, settings: QuantizationSettings) -> QuantizationResult:
    """Quantize an FP32 IR with NNCF and save the FakeQuantize IR to ``out_xml`` (atomically).

    Nothing is written unless quantization succeeds, so a failure leaves earlier files as they were.
    """
    import nncf
    import openvino as ov

    from gnaexp.models import ir

    settings.validate()
    start = time.perf_counter()
    float_xml, out_xml = Path(float_xml), Path(out_xml)
    model = ov.Core().read_model(str(float_xml))
    samples = calibration_set(settings, ir.input_shapes(model))
    names = [p.any_name for p in model.inputs]
    dataset = nncf.Dataset(samples, lambda s: {n: s[n] for n in names})
    ignored = {"ignored_scope": nncf.IgnoredScope(names=list(settings.ignored_names))} if settings.ignored_names else {}
    try:
        quantized = nncf.quantize(model, dataset, preset=nncf.QuantizationPreset.PERFORMANCE,
                                  subset_size=len(samples), advanced_parameters=_nncf_parameters(settings), **ignored)
    except Exception as exc:  # noqa: BLE001 — NNCF raises many types; the message is what matters
        raise BadInput(f"NNCF could not quantize {float_xml.name}: {exc}. The float IR is unchanged.") from exc
    if settings.signed_activations:
        make_activation_ranges_signed(quantized)
    if not describe_fake_quantize(quantized) and not settings.ignored_names:  # every layer kept in float: asked for
        raise BadInput(f"NNCF inserted no quantizers into {float_xml.name} (nothing to quantize: no convolution "
                         "or MatMul on the input path?). The float IR is unchanged.")
    if settings.output_fake_quantize:
        add_output_fake_quantize(quantized, output_ranges(model, samples))
    fq = describe_fake_quantize(quantized)
    ir.save(quantized, out_xml)
    return QuantizationResult(float_xml, out_xml, settings, calibration_fingerprint(samples), len(samples), fq,
                              mapping_notes(settings), time.perf_counter() - start)


def output_ranges(model: Any, samples: Sequence[Mapping[str, np.ndarray]]) -> dict[str, float]:
    """max |y| of every output of the float model over the calibration samples (OpenVINO CPU, FP32)."""
    import openvino as ov

    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    names = [p.any_name for p in model.outputs]
    peak = dict.fromkeys(names, 0.0)
    for sample in samples:
        result = compiled({p.any_name: sample[p.any_name] for p in model.inputs})
        for port, name in zip(compiled.outputs, names):
            peak[name] = max(peak[name], float(np.max(np.abs(result[port]))))
    return peak


OUTPUT_FQ_LEVELS = 65536  # POT's q16_a: −32768…32767


def add_output_fake_quantize(model: Any, ranges: Mapping[str, float]) -> int:
    """Insert a signed 65536-level FakeQuantize [−h, h] before each Result that has none (in place).

    h is the output's calibrated max |y|; returns how many were inserted.
    """
    import openvino as ov
    import openvino.opset13 as ops

    inserted = 0
    for result in model.get_results():
        source = result.input_value(0)
        if source.get_node().get_type_name() == "FakeQuantize":
            continue
        name = source.get_any_name()
        h = float(np.float32(ranges.get(name) or 0.0)) or 1.0  # an all-zero output keeps a unit range
        lo, hi = (ov.op.Constant(np.array(v, dtype=np.float32)) for v in (-h, h))
        fq = ops.fake_quantize(source, lo, hi, lo, hi, OUTPUT_FQ_LEVELS)
        fq.set_friendly_name(f"{source.get_node().get_friendly_name()}/output_fq")
        names = source.get_names()
        source.get_tensor().set_names(set())  # the output keeps its name, now on the quantizer
        fq.output(0).get_tensor().set_names(names)
        result.input(0).replace_source_output(fq.output(0))
        inserted += 1
    return inserted


def make_activation_ranges_signed(model: Any) -> int:
    """Rewrite activation FakeQuantize ranges [0, h] into [−h, h] (in place); returns how many changed."""
    import openvino as ov

    changed = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() != "FakeQuantize" or op.input_value(0).get_node().get_type_name() == "Constant":
            continue
        consts = [op.input_value(i).get_node() for i in range(1, 5)]
        if not all(c.get_type_name() == "Constant" for c in consts):
            continue
        values = [np.asarray(c.get_data(), dtype=np.float32) for c in consts]
        in_lo, in_hi, out_lo, out_hi = values
        if np.all(in_lo >= 0) and np.all(out_lo >= 0):
            for port, value in ((1, -in_hi), (3, -out_hi)):
                new = ov.op.Constant(np.ascontiguousarray(value, dtype=np.float32))
                op.input(port).replace_source_output(new.output(0))
            changed += 1
    return changed


def describe_fake_quantize(model: Any) -> list[dict[str, Any]]:
    """Per quantizer: what it quantizes, levels, ranges and the scale factor GNA derives from it.

    Activation FQ: sf = (levels − 1) / (high − low) (capped by the plugin at 4096 on activations other than
    inputs). Weight FQ: w_sf = min over channels of (levels − 1)/(high − low), ×230 for ≤ 255 levels (int8 with
    compound bias). int8 decompression weights are described as 255-level per-channel quantizers.
    """
    rows = []
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "FakeQuantize":
            levels = int(op.get_attributes()["levels"])
            consts = [op.input_value(i).get_node() for i in range(1, 5)]
            if not all(c.get_type_name() == "Constant" for c in consts):
                continue
            in_lo, in_hi, out_lo, out_hi = (np.asarray(c.get_data(), dtype=np.float64).ravel() for c in consts)
            on_weights = op.input_value(0).get_node().get_type_name() == "Constant"
            span = np.maximum(out_hi - out_lo, 1e-30)
            sf = float(np.min((min(levels, 65536) - 1) / span))
            if on_weights and levels <= 255:
                sf *= 230
            rows.append({"name": op.get_friendly_name(), "on": "weights" if on_weights else "activations",
                         "levels": levels, "per_channel": bool(out_lo.size > 1),
                         "input_range": [float(in_lo.min()), float(in_hi.max())],
                         "output_range": [float(out_lo.min()), float(out_hi.max())],
                         "derived_scale_factor": sf,
                         "precision": "int8" if levels <= 255 else "int16"})
        elif kind == "Convert" and op.input_value(0).get_node().get_type_name() == "Constant":
            src = op.input_value(0).get_node()
            if str(src.get_output_element_type(0)) not in ("<Type: 'int8_t'>", "i8") and src.get_output_element_type(0).get_type_name() != "i8":
                continue
            consumer = next(iter(op.output(0).get_target_inputs())).get_node()
            scale = None
            for i in range(consumer.get_input_size()):
                n = consumer.input_value(i).get_node()
                if n is not op and n.get_type_name() == "Constant":
                    scale = np.abs(np.asarray(n.get_data(), dtype=np.float64)).ravel()
            rows.append({"name": consumer.get_friendly_name(), "on": "weights", "levels": 255,
                         "per_channel": bool(scale is not None and scale.size > 1),
                         "input_range": None,
                         "output_range": [float(-127 * scale.max()), float(127 * scale.max())] if scale is not None else None,
                         "derived_scale_factor": float(230 / scale.max()) if scale is not None else None,
                         "precision": "int8", "form": "int8 decompression (Constant→Convert→Multiply)"})
    return rows
