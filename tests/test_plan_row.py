"""The emulator's plan rows: typed, their JSON form read back unchanged, older records' ``"bits"`` still read."""

import json

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

from gnaexp.backends.base import BackendResult
from gnaexp.core.errors import BadInput
from gnaexp.core.files import dumps
from gnaexp.diagnose import ladder_verdicts, verdicts
from gnaexp.emulator import emulate
from gnaexp.emulator.plan_row import Lane, PlanRow, rows_from_json


def _net() -> ov.Model:
    """A convolution, two affine layers, an eltwise sum, a sigmoid, a concat and a square: every kind of row."""
    rng = np.random.default_rng(3)
    x = ops.parameter([1, 4, 1, 16], np.float32, name="x")
    conv = ops.convolution(x, ops.constant(rng.uniform(-0.5, 0.5, (8, 4, 1, 3)).astype(np.float32)), [1, 1],
                           [0, 0], [0, 0], [1, 1])
    flat = ops.reshape(ops.relu(conv), ops.constant(np.array([1, 112], np.int64)), False)
    a = ops.matmul(flat, ops.constant(rng.uniform(-0.1, 0.1, (16, 112)).astype(np.float32)), False, True)
    b = ops.relu(ops.matmul(flat, ops.constant(rng.uniform(-0.1, 0.1, (16, 112)).astype(np.float32)), False, True))
    joined = ops.concat([ops.sigmoid(ops.add(a, b)), b], 1)
    return ov.Model([ops.power(joined, ops.constant(np.float32(2.0)))], [x])


@pytest.fixture(scope="module")
def plan() -> list[PlanRow]:
    x = np.random.default_rng(4).uniform(-1, 1, (3, 1, 4, 1, 16)).astype(np.float32)
    return emulate(_net(), {"x": x}, 1024.0).plan


def test_every_row_reads_back_from_its_json_form(plan):
    kinds = {r.op.split(" ")[0] for r in plan}
    assert {"Parameter", "Convolution", "Relu", "FullyConnected", "Eltwise", "Sigmoid", "Concat",
            "Power"} <= kinds, kinds
    written = json.loads(dumps([r.to_json() for r in plan]))
    assert rows_from_json(written) == plan
    assert all("bits" not in r and r["lane"] in ("int16", "int32") for r in written)
    conv = next(r for r in plan if r.op == "Convolution")
    assert conv.lane is Lane.INT32 and conv.extras.weights and conv.extras.geometry and conv.extras.input_layout
    assert next(r for r in plan if r.op == "Concat").extras.axis == 1
    assert next(r for r in plan if r.op.startswith("Eltwise Sum")).extras.weight_int is not None
    assert next(r for r in plan if r.op.startswith("Power")).extras.domain == (-16.0, 16.0)


def test_a_record_written_before_the_lane_had_a_name_still_reads(plan):
    """Records stored the lane as "bits" 0/16/32 (host, int16, int32): the verdicts read them as before."""
    old = []
    for row in json.loads(dumps([r.to_json() for r in plan])):
        row["bits"] = {"host": 0, "int16": 16, "int32": 32}[row.pop("lane")]
        old.append(row)
    assert rows_from_json(old) == plan
    old[1]["saturations"], old[1]["values"] = 50, 100
    result = BackendResult("gna-emu", "emulated", {}, info={"plan": old})
    conv = old[1]["layer"]
    assert verdicts._saturated_layers(result, True) == [f"{conv} (50 of 100 values)"]
    assert "int32 accumulator" in ladder_verdicts.saturation_fact(rows_from_json(old), 1024.0, None)


@pytest.mark.parametrize("change, named", [({"lane": "int8"}, "'lane' is 'int8'"), ({"out_sf": "big"}, "'out_sf'"),
                                           ({"layer": None}, "'layer'"), ({"saturations": 1.5}, "'saturations'")])
def test_a_damaged_row_is_named_not_a_crash(plan, change, named):
    row = dict(json.loads(dumps(plan[1].to_json())), **change)
    result = BackendResult("gna-emu", "emulated", {}, info={"plan": [row]})
    with pytest.raises(BadInput, match=rf"the plan of gna-emu \(emulated\), row 0: {named}.*damaged"):
        result.plan_rows()
