"""``gnaexp quantize``: NNCF post-training quantization (POT's successor) into a FakeQuantize IR."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from gnaexp.cli.common import add_set_option, make_config, UsageError
from gnaexp.core.gna_settings import INPUT_KINDS, QUANTIZE_BITS


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("quantize", help="NNCF post-training quantization (POT's successor) into a FQ IR")
    p.add_argument("model", help="conv | concat | concat_conv, or a path to an FP32 OpenVINO .xml")
    p.add_argument("--calibration", help="your calibration samples: .npy/.npz shaped [N, *input shape]")
    p.add_argument("--calibration-size", type=int, default=32, help="generated samples (default 32)")
    p.add_argument("--calibration-seed", type=int, default=0)
    p.add_argument("--calibration-kind", default="uniform01", help=", ".join(INPUT_KINDS))
    p.add_argument("--activation-bits", type=int, choices=QUANTIZE_BITS, default=16)
    p.add_argument("--weight-bits", type=int, choices=QUANTIZE_BITS, default=16)
    p.add_argument("--no-output-fq", action="store_true",
                   help="leave the network output unquantized (POT's GNA config quantized it: 16-bit, calibrated)")
    add_set_option(p)
    p.add_argument("--out", required=True, help="folder for float.xml, quantized.xml and quantization.json")
    p.set_defaults(func=cmd_quantize)


def cmd_quantize(args: Any) -> int:
    from gnaexp.core.files import atomic_write_text, dumps
    from gnaexp.core.output_folder import check_folder, publish_folder
    from gnaexp.models.nncf_quantize import QuantizationSettings, quantize_ir

    settings = QuantizationSettings(args.activation_bits, args.weight_bits, args.calibration_size,
                                    args.calibration_seed, args.calibration_kind, 1.0, args.calibration or "",
                                    output_fake_quantize=not args.no_output_fq)
    settings.validate()
    out = Path(args.out)
    check_folder(out, "quantize output folder")
    if args.model.endswith(".xml"):
        float_src = Path(args.model)
        if not float_src.exists():
            raise UsageError(f"model {float_src} does not exist")
    else:
        from gnaexp.experiment import build_model

        float_src = build_model(make_config(args.model, args.set, "torch")).require_ir()
    # Staged inside --out and put in place whole, only once everything succeeded.
    with publish_folder(out, "quantize output folder") as stage:
        result = quantize_ir(float_src, stage / "quantized.xml", settings)
        for suffix in (".xml", ".bin"):
            shutil.copyfile(float_src.with_suffix(suffix), stage / f"float{suffix}")
        result.float_xml, result.quantized_xml = stage / "float.xml", stage / "quantized.xml"
        atomic_write_text(stage / "quantization.json", dumps(result.to_json(relative_to=stage)))
    print(f"quantized {float_src.name} ({settings.tag()}, {result.calibration_count} calibration samples) "
          f"in {result.duration_s:.1f} s → {out / 'quantized.xml'}")
    for row in result.fake_quantize:
        print(f"  {row['on']:<11} {row['precision']:<5} levels {row['levels']:<6} range {row['output_range']} "
              f"→ sf {row['derived_scale_factor']:.6g}  ({row['name']})")
    for note in result.notes:
        print(f"  note: {note}")
    return 0
