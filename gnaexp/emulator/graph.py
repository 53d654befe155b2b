"""Quantization plan and integer execution of a parsed IR (see ``ir_reader``).

``build_plan`` walks the graph once per configuration (input scale factors, precision, layout) and decides every
scale factor the plugin would (docs/gna-rules.md §3); ``Plan.run`` executes the integer arithmetic on a batch of
inputs, vectorised over a leading sample axis N. Rule-set: ``RULES_VERSION``.

Inferred behaviour [I], implemented as described and not confirmed on a device:
- an input FakeQuantize only sets the input scale factor (values are then limited by int16 saturation, not
  by the FQ range);
- a ReLU or FQ reading 16-bit data (not a conv/FC output) runs its PWL directly on the int16 values;
- the legacy-concat layout (§4.3): a conv whose input is network data that went through a Concat reads the
  NCW concat buffer as if it were NWC;
- identities inserted on a 32-bit output that feeds a Result and another layer share the default rule.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping

import numpy as np

from gnaexp.core.gna_settings import LAYOUTS, GnaSettings  # noqa: F401 — LAYOUTS re-exported
from gnaexp.emulator import heap, kernels, parallel, porting as porting_rules, primitives, releases
from gnaexp.emulator.context import BuildContext, Requantize
from gnaexp.emulator.ir_reader import downstream, Program, root_key, unsupported
from gnaexp.emulator.moves import MOVE_OPS
from gnaexp.emulator.plan_compile import CompiledPlan
from gnaexp.emulator.plan_row import Lane, PlanRow
from gnaexp.emulator.plan_types import Step, TInfo
from gnaexp.emulator.quantize import fq_scale
from gnaexp.emulator.registry import HANDLERS
from gnaexp.emulator.releases import PluginRelease
from gnaexp.core.errors import BadInput

RULES_VERSION = "gna-plugin-rules/2"  # with the plugin release (releases.py) it names the rules a result followed
CHUNK = 256  # samples per task: work arrays stay in cache, and a batch splits into enough tasks for the cores
_COMPILING = threading.Lock()
SPLIT_MIN = 64  # samples a task needs before a batch below 2·CHUNK (one step of N streams) is shared by the cores
TASK_WORK = 20_000_000  # multiply-adds that let a compiled plan share fewer samples (a few ms: well above a start)


@dataclass
class Plan:
    steps: list[Step]
    outputs: list[tuple[str, str, float]]  # (name, key, sf)
    input_sf: dict[str, float]
    notes: list[str]
    layout: str
    precision: str
    input_sf_source: dict[str, str] = field(default_factory=dict)  # input → "configured" | "fakequantize"
    values_per_sample: dict[str, int] = field(default_factory=dict)  # layer → output values per sample
    release: PluginRelease = releases.DEFAULT
    # the sample shape and dtype of every tensor, from the first run; then the plan compiled (False: nothing to
    # compile)
    _shapes: dict[str, tuple[tuple[int, ...], np.dtype]] | None = field(default=None, init=False, repr=False,
                                                                        compare=False)
    _compiled: CompiledPlan | Literal[False] | None = field(default=None, init=False, repr=False, compare=False)

    def summary(self) -> list[PlanRow]:
        """The rows of the steps that compute (not the data movements), saturations not yet counted."""
        return [s.row for s in self.steps if s.row is not None]

    @functools.cached_property
    def _schedule(self) -> list[tuple[Callable[..., tuple[np.ndarray, int]], tuple[str, ...], str, str | None,
                                      Any, tuple[str, ...]]]:
        """Per step, resolved once per plan (its steps are not changed once built; ``edited`` makes a new plan):
        (run, input keys, output key, layer counted or None, integer dtype kept or None, keys read for the last
        time, dropped after it so that a large batch does not hold every intermediate at once)."""
        last: dict[str, int] = {}
        for i, st in enumerate(self.steps):
            for k in st.inputs:
                last[k] = i
        for _, key, _ in self.outputs:
            last[key] = len(self.steps)
        out = []
        for i, st in enumerate(self.steps):
            lane = st.row.lane if st.row is not None else None
            dtype = None if lane in (None, Lane.HOST) else np.int32 if lane is Lane.INT32 else np.int16
            dead = tuple(k for k in dict.fromkeys(st.inputs) if last[k] == i)
            out.append((st.run, tuple(st.inputs), st.out, st.name if st.row is not None else None, dtype, dead))
        return out

    def _compiled_plan(self) -> CompiledPlan | None:
        """The plan compiled (plan_compile.py) from its second run on, once the process runs compiled loops
        (``kernels.compiled``); None: interpret it (its first run reads the tensors' shapes)."""
        if self._compiled is None and self._shapes is not None and kernels.compiled(0) is not None:
            with _COMPILING:
                if self._compiled is None:
                    made = CompiledPlan(self.steps, self._schedule, self.outputs, self._shapes)
                    self._compiled = made if made.useful else False
        return self._compiled or None

    def _run_chunk(self, feeds: dict[str, np.ndarray], keep_ints: bool, pool: Any = None) -> tuple[dict, dict, dict]:
        """Every step on one chunk: (integer outputs {name: values}, saturations, kept integers); ``pool``: the
        cores' ``native_pool.Pool``, which shares a compiled plan's samples."""
        compiled = None if keep_ints else self._compiled_plan()
        if compiled is not None:
            from gnaexp.emulator import native_plan
            from gnaexp.emulator.plan_compile import NonFiniteInput

            try:
                return compiled.run(feeds, native_plan, pool)
            except NonFiniteInput:
                pass  # interpreted below, whose input quantization says what is wrong
        env: dict[str, np.ndarray] = dict(feeds)
        sats: dict[str, int] = {}
        ints: dict[str, np.ndarray] = {}
        shapes = None if self._shapes is not None else {k: (v.shape[1:], v.dtype) for k, v in feeds.items()}
        for run, inputs, out, name, dtype, dead in self._schedule:
            val, n_sat = run(env[inputs[0]]) if len(inputs) == 1 else run(*[env[k] for k in inputs])
            for k in dead:
                del env[k]
            env[out] = val
            if shapes is not None:
                shapes[out] = (np.shape(val)[1:], np.asarray(val).dtype)
            if name is not None:
                sats[name] = sats.get(name, 0) + n_sat
                if keep_ints and dtype is not None:
                    ints[name] = val.astype(dtype)
        if shapes is not None:
            self._shapes = shapes
        return {name: env[key] for name, key, _ in self.outputs}, sats, ints

    def run(self, feeds: Mapping[str, np.ndarray], keep_ints: bool = False) -> tuple[dict, dict, dict]:
        """Run on batched float32 inputs {param key: (N, *shape)}; returns (outputs, saturations, ints).

        Chunks of CHUNK samples run on the cores through ``parallel.run_all`` (no library thread pool is
        involved, see parallel.py); each dequantizes its outputs straight into arrays for the whole batch.
        """
        n = next(iter(feeds.values())).shape[0]
        heap.keep_freed_memory()  # each step's work arrays reuse the last step's memory (heap.py)
        compiled = self._compiled_plan()  # once, before the tasks
        size = _task_size(n, min(SPLIT_MIN, -(-TASK_WORK // max(1, compiled.work))) if compiled else SPLIT_MIN)
        scale = {name: sf for name, _, sf in self.outputs}
        pool = None
        if size < n < 2 * CHUNK and compiled and compiled.shares_rows and not keep_ints:
            from gnaexp.emulator import native_pool  # one task whose samples the cores share in compiled code

            pool = native_pool.pool()
        if size >= n or pool is not None:  # one task
            with parallel.single_threaded_blas():  # entered once here, not once per layer (a stream's steps)
                values, sats, ints = self._run_chunk(dict(feeds), keep_ints, pool)
            return {k: _dequantize(v, scale[k], compiled) for k, v in values.items()}, sats, ints
        outs: dict[str, np.ndarray] = {}
        sats = {}
        ints = {}
        merge = threading.Lock()

        def whole(into: dict[str, np.ndarray], k: str, v: np.ndarray, dtype: Any) -> np.ndarray:
            with merge:  # the first chunk to finish allocates the batch's array
                if k not in into:
                    into[k] = np.empty((n,) + v.shape[1:], dtype=dtype)
                return into[k]

        def chunk(s: int) -> None:
            values, part_sats, part_ints = self._run_chunk({k: v[s:s + size] for k, v in feeds.items()}, keep_ints)
            for k, v in values.items():
                primitives.dequantize(v, scale[k], out=whole(outs, k, v, np.float32)[s:s + len(v)])
            for k, v in part_ints.items():
                whole(ints, k, v, v.dtype)[s:s + len(v)] = v
            with merge:
                for k, c in part_sats.items():
                    sats[k] = sats.get(k, 0) + c

        parallel.run_all([functools.partial(chunk, s) for s in range(0, n, size)])
        return outs, sats, ints


def _dequantize(values: np.ndarray, scale: float, compiled: Any) -> np.ndarray:
    """``primitives.dequantize``; a compiled plan's output (columns of its work array, contiguous rows) through the
    compiled loop, which reads the rows as contiguous (0.4 ns a value through NumPy's strided cast)."""
    if compiled and values.dtype == np.float64 and values.ndim >= 2 and len(values):
        rows = values.reshape(len(values), -1)
        if rows.base is not None and rows.strides[1] == 8:  # a view (no copy) with contiguous rows
            from gnaexp.emulator import native_plan

            out = np.empty(values.shape, dtype=np.float32)
            native_plan.dequantize_rows(rows, scale, out.reshape(len(values), -1))
            return out
    return primitives.dequantize(values, scale)


def _task_size(n: int, split_min: int = SPLIT_MIN) -> int:
    """Samples per task: CHUNK for a large batch; a smaller one (a step of N streams) shared evenly by the cores
    when each gets ``split_min`` samples, else one task. Samples are independent: any split gives the same
    numbers."""
    if n >= 2 * CHUNK:
        return CHUNK
    tasks = min(parallel.available_cores(), parallel.MAX_THREADS, n // split_min)
    return -(-n // tasks) if tasks > 1 else n


def edited(plan: Plan, step: str, wrap: Callable[[Step], Callable[..., tuple[np.ndarray, int]]]) -> Plan:
    """A copy of ``plan`` whose step named ``step`` runs ``wrap(step)`` instead: a mistake applied inside the
    net (e.g. a layer reading its input in the wrong layout), for hypotheses and the per-layer table."""
    if not any(s.name == step for s in plan.steps):
        raise KeyError(f"no step {step!r} in the plan")
    return dataclasses.replace(plan, steps=[dataclasses.replace(s, run=wrap(s), lowered=None, run_into=None) if s.name == step else s
                                            for s in plan.steps])


def _moves_to_params(prog: Program, key: str) -> list[str] | None:
    """Parameters a tensor is made of through data movement and Concat only, else None."""
    by_out = {n.out: n for n in prog.nodes}
    param_keys = {p[0] for p in prog.params}
    if key in param_keys:
        return [key]
    node = by_out.get(key)
    if node is None or (node.op not in MOVE_OPS and node.op != "Concat"):
        return None
    found: list[str] = []
    for k in node.inputs if node.op == "Concat" else node.inputs[:1]:
        sub = _moves_to_params(prog, k)
        if sub is None:
            return None
        found += sub
    return found


def build_plan(prog: Program, sample_shapes: Mapping[str, tuple[int, ...]], settings: GnaSettings) -> Plan:
    """Decide all scale factors and build the integer steps (restarting when a concat requantizes).

    ``settings.porting``: apply what a porting team does with layers the plugin refuses as exported
    (``porting.py``): host pre/post-processing for ops GNA has no layer for, and the exact rewrites of padded or
    odd-sized convolutions. Without it those layers are refused with the plugin's reason.
    ``settings.plugin_release``: the GNA plugin release whose rounding the tables and weights follow
    (``releases.py``)."""
    scale_factors, precision, layout, porting = (settings.scale_factors, settings.precision, settings.layout,
                                                 settings.porting)
    plugin_release = releases.get(settings.plugin_release)
    overrides: dict[str, float] = {}
    requantized: list[str] = []  # each restart's reason, kept for the final plan
    seen: set[tuple[str, float]] = set()
    why: dict[str, str] = {}
    # Each restart sets one layer's scale factor; the plugin gives up on a layer it has to set again to the same
    # value (a loop), and so does the emulator, naming the layers instead of running on.
    for _ in range(len(prog.nodes) * 4 + 16):
        try:
            plan = _build(prog, sample_shapes, scale_factors, precision, layout, overrides, porting, plugin_release,
                          frozenset(settings.int16_layers))
        except Requantize as rq:
            if (rq.layer, rq.sf) in seen:
                raise BadInput(f"scale factors do not settle: {rq.note}, again; layers requantized so far: "
                                 f"{', '.join(sorted(overrides))}") from None
            seen.add((rq.layer, rq.sf))
            overrides[rq.layer] = rq.sf
            why[rq.layer] = ("concat" if rq.note.startswith("concat") else
                             "memory" if rq.note.startswith("memory") else "eltwise")
            requantized.append(rq.note)
            continue
        for st in plan.steps:
            if st.name in overrides and st.row is not None:
                st.row = dataclasses.replace(st.row, requantized_for=why[st.name])
        plan.notes[:0] = requantized
        return plan
    raise BadInput(f"scale factors do not settle after {len(requantized)} requantizations; the last: "
                     f"{requantized[-1] if requantized else '-'}")


MEMORY_KEY = "memory-sf:"  # overrides key of a state's scale factor


def _memory_write(ctx: BuildContext, key: str, memory, state_sf: float, overrides: Mapping[str, float]) -> str:
    """The 16-bit tensor an Assign writes, at the state's scale factor, or a restart that makes it so (the
    plugin's memory rule, state_layers.py)."""
    k = ctx.get(ctx.prog.memory_writes[key])
    if ctx.info[k].lane is Lane.INT32:
        k = ctx.need16(ctx.prog.memory_writes[key], for_result=True)
    ti = ctx.info[k]
    if np.float32(ti.sf) == np.float32(state_sf):
        return k
    if MEMORY_KEY + key not in overrides:
        raise Requantize(MEMORY_KEY + key, float(np.float32(ti.sf)),
                         f"memory {memory.variable!r}: the state takes the scale factor of the layer writing it "
                         f"(sf {ti.sf:g}); propagation restarted from its ReadValue")
    if ti.act:
        raise Requantize(ti.act, state_sf, f"memory {memory.variable!r}: activation {ti.act!r} requantized from sf "
                                           f"{ti.sf:g} to the state's sf {state_sf:g}")
    raise BadInput(f"memory {memory.variable!r}: cannot requantize input to its Assign: the layer writing the state "
                     f"has sf {ti.sf:g}, the state {state_sf:g}, and no activation before it to requantize "
                     "(scale_factor_calc.cpp, memory layers)")


def _user_sf(prog: Program, scale_factors: float | Mapping[Any, float]) -> dict[str, float]:
    """Each input's scale factor, from one value for all or a mapping by input name or position."""
    out: dict[str, float] = {}
    if isinstance(scale_factors, Mapping):
        known = {n for _, names, _ in prog.params for n in names} | set(range(len(prog.params)))
        unknown = [k for k in scale_factors if k not in known]
        if unknown:
            raise BadInput(f"scale factor given for unknown input(s) {unknown}; the model's inputs are "
                             f"{[names[0] for _, names, _ in prog.params]}")
    for i, (key, names, _) in enumerate(prog.params):
        if isinstance(scale_factors, Mapping):
            sf = next((scale_factors[n] for n in names if n in scale_factors), scale_factors.get(i, 1.0))
        else:
            sf = scale_factors
        sf = float(np.float32(sf))
        if not np.isfinite(sf) or sf <= 0:
            raise BadInput(f"input scale factor for {names[0]!r} must be positive and finite, got {sf}")
        out[key] = sf
    return out


def _build(prog, sample_shapes, scale_factors, precision, layout, overrides, porting=False,
           release: PluginRelease = releases.DEFAULT, int16_layers: frozenset[str] = frozenset()) -> Plan:
    ctx = BuildContext(prog, precision, layout, porting, overrides, release, int16_layers=int16_layers)
    info, notes = ctx.info, ctx.notes
    sf_in = _user_sf(prog, scale_factors)
    pname = {k: names[0] for k, names, _ in prog.params}
    for key in prog.memory:  # a state's scale factor is the writer's, found by restarting (state_layers.py)
        sf_in[key] = overrides.get(MEMORY_KEY + key, 1.0)

    # FakeQuantize right after network inputs sets their scale factor (§3.1) and replaces the user value.
    sf_source = {key: "memory" if key in prog.memory else "configured" for key, _, _ in prog.params}
    for n in prog.nodes:
        if n.op == "FakeQuantize" and n.inputs[0] not in prog.consts:
            params = _moves_to_params(prog, n.inputs[0])
            if params:
                ctx.input_fq.add(n.name)
                lv = int(n.attrs["levels"])
                lo, hi = (float(np.min(prog.consts[n.inputs[i]])) for i in (1, 2))
                sf = fq_scale(lv, lo, hi)
                for p in params:
                    if sf_in[p] != sf:
                        notes.append(
                            f"input {pname[p]!r}: scale factor {sf_in[p]:g} overridden by {sf:g} from FakeQuantize "
                            f"{n.name!r} ({lv} levels on [{lo:g}, {hi:g}])"
                        )
                    sf_in[p] = sf
                    sf_source[p] = "fakequantize"
                    if max(abs(lo), abs(hi)) * sf > 32767:
                        notes.append(f"input {pname[p]!r}: values above {32767 / sf:g} saturate int16 at sf {sf:g}")

    host_fed = porting_rules.host_fed_params(prog) if porting else set()
    for key, names, _ in prog.params:
        sf = sf_in[key]
        shape = tuple(sample_shapes[key])
        if key in host_fed:  # quantized where the GNA part starts reading it, after the host ops
            info[key] = TInfo(sf, Lane.HOST, shape, from_input=True, param=key)
            continue
        info[key + "#q"] = TInfo(sf, Lane.INT16, shape, from_input=True, param=key)
        ctx.alias[key] = ctx.quantize_step(key, key, names, sf, False)

    for node in prog.nodes:
        handler = HANDLERS.get(node.op)
        if handler is None:  # pragma: no cover - ir_reader already rejects these
            raise unsupported(node.op, node.name)
        handler(ctx, node)

    steps, get, need16 = ctx.steps, ctx.get, ctx.need16
    outputs = []
    for name, key in prog.results:
        k = get(key)
        ti = info[k]
        if ti.lane is Lane.INT32 and any(c.op not in ("Result",) for c in downstream(prog, root_key(prog, key))):
            k = need16(key, for_result=True)
            ti = info[k]
        outputs.append((name, k, ti.sf))
    for key, memory in prog.memory.items():
        outputs.append((pname[key], _memory_write(ctx, key, memory, sf_in[key], overrides), sf_in[key]))
    sizes = {st.name: int(np.prod(info[st.out].shape)) for st in steps if st.row is not None and st.out in info}
    return Plan(steps, outputs, {pname[k]: v for k, v in sf_in.items()}, notes, layout, precision,
                {pname[k]: v for k, v in sf_source.items()}, sizes, release)
