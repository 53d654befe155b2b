"""A full per-layer run (``gnaexp layers``) against a single inference, side by side.

Per net: the per-layer comparison of every backend given (every layer tapped and compared, each layer's local
error on its own small model, NNCF's int8 model from the cache after the first run), the first run and the best of
the next ones; then one plain inference of the same IR on OpenVINO CPU f32, compile included and alone. The
per-layer figure comes first: it is what a user waits for. Model building (torch export, corpus fetch) is not
timed. Run: python bench/layers.py [--repeat 3] [--backends openvino:CPU,openvino:CPU:bf16,nncf:int8,gna-emu]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
from typing import Any, Callable

NETS = {"conv": ([], False), "concat_conv": ([], False),
        "silero_vad": (["scale_factor=input=2048,state=1024"], True)}


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # NNCF's progress bars
        fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backends", default="openvino:CPU,openvino:CPU:bf16,nncf:int8,gna-emu")
    args = parser.parse_args()

    import numpy as np
    import openvino as ov

    from gnaexp import experiment
    from gnaexp.cli.layers import _config, _torch, calibration
    from gnaexp.layers import compare
    from gnaexp.layers.backends import parse_layer_backends

    backends = parse_layer_backends(args.backends)
    print(f"backends {args.backends}; best of {args.repeat} after the first run")
    print(f"{'net':<12} {'layers':>6} {'per-layer first':>16} {'per-layer best':>15} "
          f"{'1 inference (compile+infer)':>28} {'infer alone':>12} {'ratio':>7}")
    for net, (sets, porting) in NETS.items():
        config = _config(argparse.Namespace(net=net, model=None, input=None, set=sets, porting=porting))
        model = experiment.build_model(config)
        feed = experiment.make_inputs(config, model)
        xml = model.require_ir()
        settings, cal, torch = experiment.gna_settings(config), calibration(config), _torch(model)
        found: list[Any] = []

        def per_layer() -> None:
            found.append(compare.compare(xml, feed, backends, None, settings, model.name, [], cal, torch)[0])
        first = _timed(per_layer)
        best = min(_timed(per_layer) for _ in range(args.repeat))
        core = ov.Core()
        ov_model = core.read_model(str(xml))
        inputs = {p.any_name: np.ascontiguousarray(feed[p.any_name]) for p in ov_model.inputs}
        compiled: list[Any] = []

        def one() -> None:
            compiled[:] = [core.compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})]
            compiled[0](inputs)
        single = min(_timed(one) for _ in range(args.repeat))
        alone = min(_timed(lambda: compiled[0](inputs)) for _ in range(args.repeat))
        layers = len({r.layer for r in found[0].rows})
        print(f"{net:<12} {layers:>6} {first:>15.2f}s {best:>14.2f}s {single * 1e3:>26.1f}ms {alone * 1e3:>10.2f}ms "
              f"{best / single:>6.0f}x")


if __name__ == "__main__":
    main()
