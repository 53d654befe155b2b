"""A 2-D convolution is reported and refused as what the 2023.1 plugin makes of it on GNA 3.0 (a 1-D convolution
after swapping or mapping, or its 2-D convolution primitive), never as a native 1-D convolution the emulator then
fails to run."""

import numpy as np
import openvino as ov
import openvino.opset8 as ops
import pytest

from gnaexp.emulator import emulate
from gnaexp.emulator.support import model_support


def _net(shape, kernel):
    x = ops.parameter(list(shape), np.float32, name="x")
    w = ops.constant(np.full((4, shape[1], *kernel), 0.1, np.float32))
    return ov.Model([ops.result(ops.relu(ops.convolution(x, w, [1, 1], [0, 0], [0, 0], [1, 1])))], [x])


@pytest.mark.parametrize("shape, kernel, plugin", [
    ((1, 2, 8, 8), (3, 3), "runs it as a GNA 3.0 2-D convolution (finalizeConvolution2DPrimitive"),
    ((1, 2, 8, 1), (3, 1), "swaps H and W and runs a 1-D convolution along H"),
    ((1, 1, 4, 8), (4, 3), "maps it to a 1-D convolution (isMappableFrom2DTo1D)"),
])
def test_a_2d_convolution_is_refused_with_what_the_plugin_does(shape, kernel, plugin):
    model = _net(shape, kernel)
    (row,) = [r for r in model_support(model).rows if r["op"] == "Convolution"]
    assert row["status"] == "refused" and row["by"] == "emulator", row
    assert plugin in row["how"] and "not modelled by the emulator yet" in row["how"]
    assert "gna_graph_compiler.cpp" in row["source"] and "@2023.1.0" in row["source"]
    with pytest.raises(ValueError, match=f"a 2-D convolution \\(input H×W {shape[2]}×{shape[3]}.*{plugin[:20]}"):
        emulate(model, {"x": np.ones(shape, np.float32)}, 64.0)


def test_a_convolution_over_one_row_stays_a_native_1d_convolution():
    model = _net((1, 2, 1, 8), (1, 3))
    (row,) = [r for r in model_support(model).rows if r["op"] == "Convolution"]
    assert row["status"] == "native"
    assert emulate(model, {"x": np.ones((1, 2, 1, 8), np.float32)}, 64.0).outputs
