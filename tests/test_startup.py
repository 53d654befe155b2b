"""A command loads only what it needs (start-up), and the emulator's NumPy equivalents, which a process runs before
it loads the compiled loops, give the compiled loops' bits."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gnaexp import experiment
from gnaexp.emulator import conv as cv, emulate, native
from gnaexp.emulator.int_ranges import INT8_MAX, INT8_MIN, INT16_MAX, INT16_MIN
from gnaexp.emulator.quantize import quantize_numpy

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "numba", "scipy", "openvino", "matplotlib", "nbformat", "papermill", "nbconvert", "dask", "nncf")


def _loaded_after(argv: list[str], cwd: Path) -> tuple[int, list[str], str]:
    """Run the CLI on argv in a fresh process: (exit code, the heavy packages it loaded, its stdout)."""
    code = ("import sys, json\nfrom gnaexp.cli import main\ntry:\n    rc = main(sys.argv[1:])\n"
            "except SystemExit as exc:\n    rc = exc.code\nsys.stdout.flush()\n"
            f"print(json.dumps([rc, [m for m in {HEAVY!r} if m in sys.modules]]), file=sys.stderr)")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=600)
    rc, loaded = json.loads(proc.stderr.strip().splitlines()[-1])
    return rc, loaded, proc.stdout


def test_help_loads_no_numpy_nor_any_backend(tmp_path):
    code = ("import sys\nfrom gnaexp.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('numpy', 'yaml') + " + repr(HEAVY) + " if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    assert "diagnose" in proc.stdout and "quantize" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout[-500:]


def test_diagnosing_a_cached_forum_net_needs_neither_torch_nor_the_compiled_loops(tmp_path):
    """Once the torch reference is cached, ``gnaexp diagnose conv --observed FILE`` imports no torch and no numba
    (nor scipy, which numba pulls in), and says what a run with every package loaded says."""
    config = experiment.ExperimentConfig(experiment="conv", seed=3, scale_factor=2048.0)
    model, feed, _, _ = experiment.reference_run(config)  # fills the cache (torch runs here, in this process)
    observed = emulate(model.ir_xml, feed, 2048.0).outputs["output"]
    np.save(tmp_path / "observed.npy", observed)
    argv = ["diagnose", "conv", "--set", "seed=3", "--set", "scale_factor=2048", "--observed", "observed.npy"]
    rc, loaded, out = _loaded_after(argv, tmp_path)
    assert rc == 0 and "no defect: the observed output matches the emulated GNA computation" in out, out
    assert not {"torch", "numba", "scipy", "matplotlib", "nncf", "papermill", "dask"} & set(loaded), loaded
    # The same words as a process that imports torch and the compiled loops first (this one has both).
    from gnaexp.cli import main
    import contextlib
    import io

    here = io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with contextlib.redirect_stdout(here):
            assert main(argv) == 0
    finally:
        os.chdir(cwd)
    assert here.getvalue() == out


@pytest.mark.parametrize("bits", [16, 8])
def test_input_quantization_in_numpy_gives_the_compiled_bits(bits):
    """Ties, signed zeros, both saturations, inf and NaN: values, saturation and non-finite counts all equal."""
    lo, hi = (INT16_MIN, INT16_MAX) if bits == 16 else (INT8_MIN, INT8_MAX)
    rng = np.random.default_rng(bits)
    edges = [0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999997, -0.49999997, -0.0, 0.0, -0.3, 1e-45, hi + 0.4, hi + 0.6,
             lo - 0.4, lo - 0.6, 1e30, -1e30, np.inf, -np.inf, np.nan]
    x = np.concatenate([np.array(edges, np.float32), rng.normal(0, hi, 3000).astype(np.float32),
                        (rng.integers(-4 * hi, 4 * hi, 1000) + 0.5).astype(np.float32)]).reshape(1, -1)
    for sf in (1.0, 0.5, 3.0, 2048.0):
        want = np.empty_like(x)
        n_want, bad_want = native.quantize_input(x, np.float32(sf), want, np.float32(lo), np.float32(hi))
        got, n_got, bad_got = quantize_numpy(x, sf, lo, hi)
        assert got.dtype == np.float32 and (n_got, bad_got) == (n_want, bad_want)
        assert got.tobytes() == want.tobytes()  # the same bits: -0.0 and NaN included


@pytest.mark.parametrize("interleave", [True, False])
def test_the_convolution_as_a_matrix_product_gives_the_compiled_loops_bits(interleave):
    """Short filters (the loop's case) as the one float64 product a process runs before it loads the loops,
    saturating sums included."""
    rng = np.random.default_rng(int(interleave))
    channels, width, stride, n_filters = 3, 40, 2, 5
    step = channels * stride
    blocks = rng.integers(-2**15, 2**15, (4, n_filters, step)).astype(np.float64)
    bias = rng.integers(-2**31, 2**31 - 1, n_filters).astype(np.float64)
    x = rng.integers(-2**15, 2**15, (3, channels * width)).astype(np.float32)
    x[0] = 2**15 - 1  # some sums saturate int32
    positions = (width - 4 * stride) // stride + 1
    loop = np.empty((3, n_filters, positions))
    sat = native.conv1d_rows(x, channels, width, interleave, blocks, bias, stride, loop)
    kernel = cv.ConvKernel(blocks, bias, positions, interleave=(channels, width, stride) if interleave else None)
    product, product_sat = kernel.product(x.astype(np.float64))
    assert sat > 0 and product_sat == sat
    assert product.tobytes() == loop.tobytes()


def test_a_process_without_the_compiled_loops_emulates_the_same_bits(tmp_path):
    """Every forum net, every layer's integers: a fresh process (NumPy equivalents) against this one (compiled)."""
    script = ("import sys, numpy as np\nfrom gnaexp import experiment\nfrom gnaexp.emulator import emulate\n"
              "out = {}\nfor name in ('conv', 'concat', 'concat_conv'):\n"
              "    config = experiment.ExperimentConfig(experiment=name, seed=5, input_kind='normal')\n"
              "    model, feed, _, _ = experiment.reference_run(config)\n"
              "    em = emulate(model.ir_xml, feed, 300.0, keep_ints=True)\n"
              "    out.update({f'{name}|{k}': v for k, v in {**em.outputs, **em.ints}.items()})\n"
              "assert 'numba' not in sys.modules\nnp.savez(sys.argv[1], **out)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "numpy.npz")], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with np.load(tmp_path / "numpy.npz") as fresh:
        got = {k: fresh[k] for k in fresh.files}
    assert len(got) > 6
    for name in ("conv", "concat", "concat_conv"):
        config = experiment.ExperimentConfig(experiment=name, seed=5, input_kind="normal")
        model, feed, _, _ = experiment.reference_run(config)
        em = emulate(model.ir_xml, feed, 300.0, keep_ints=True)
        for k, v in {**em.outputs, **em.ints}.items():
            assert got[f"{name}|{k}"].tobytes() == v.tobytes(), (name, k)


def test_a_batch_that_loads_the_compiled_loops_part_way_across_threads_emulates_the_same_bits(tmp_path):
    """A fresh process's batch of chunks on several threads: the early chunks run the NumPy equivalents, one
    thread loads the compiled loops while the others go on, the later chunks run compiled; every value as here."""
    config = experiment.ExperimentConfig(experiment="conv", seed=2)
    model, feed, _, _ = experiment.reference_run(config)
    batch = {k: np.random.default_rng(4).normal(0, 1, (3000,) + v.shape).astype(np.float32) for k, v in feed.items()}
    np.savez(tmp_path / "batch.npz", **batch)
    script = ("import sys, numpy as np\nfrom gnaexp.emulator import emulate\n"
              "with np.load(sys.argv[2]) as z:\n    feed = {k: z[k] for k in z.files}\n"
              "em = emulate(sys.argv[1], feed, 2048.0)\nassert 'numba' in sys.modules\n"
              "np.savez(sys.argv[3], **em.outputs)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(model.ir_xml), str(tmp_path / "batch.npz"),
                           str(tmp_path / "out.npz")], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    want = emulate(model.ir_xml, batch, 2048.0).outputs
    with np.load(tmp_path / "out.npz") as got:
        assert sorted(got.files) == sorted(want) and all(got[k].tobytes() == want[k].tobytes() for k in want)
