"""A plan compiled: its lowered steps run as rows of one compiled loop (native_plan.py) on one work array.

Why: interpreting a plan costs every step a Python call, temporaries and a dictionary round trip; an unrolled
recurrent net has hundreds of small steps per inference (NSNet2: 615) and a stream runs its steps once per
frame, so that overhead, not the arithmetic, set their speed. Here each tensor gets columns of one work array
(N samples × columns), reused once the tensor is dead; consecutive lowered steps (``Step.lowered``: PWLs,
eltwise, fully connected, constants and data movements) run as one call of ``native_plan.run_ops``, and only
the others (convolutions, host steps, input quantization, …) run as Python between such calls, reading and
writing the work array. A data movement becomes a gather (its value map read once by running it on value
indices), or nothing when it keeps a contiguous run of its input's values (a reshape, a split): the output
then names the same columns.

The numbers are those of the interpreted plan, bit for bit: every lowered form does the same float64
arithmetic on the same integers (native_plan.py), and the saturation counts are the steps' own.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from gnaexp.emulator.plan_conv import conv_description, conv_lowerable
from gnaexp.emulator.plan_types import Pools, Step

CODES = {"gather": 0, "const": 1, "pwl": 2, "sum": 3, "prod": 4, "scale": 5, "scaleshift": 6, "fc": 7, "conv": 8,
         "quant": 9}
HEAVY_KINDS = ("fc", "conv", "pool", "eltwise", "pwl")  # steps whose Python, left uncompiled, is a layer's arithmetic
FLOAT32_INDEX = 1 << 24  # values a movement of float32 data may have to read its value map (exact indices)
WIDTH = 11  # native_plan.WIDTH


class NonFiniteInput(Exception):
    """A compiled run's input quantization met NaN or infinity (native_plan.NON_FINITE): the caller runs the plan
    interpreted, whose quantization names the input and the count (a bad-input error)."""


class CompiledPlan:
    """The plan's steps as segments: (True, first op row, end) runs rows, (False, step index) one Python step."""

    def __init__(self, steps: Sequence[Step], schedule: Sequence[tuple], outputs: Sequence[tuple[str, str, float]],
                 shapes: Mapping[str, tuple[tuple[int, ...], np.dtype]]) -> None:
        sizes = {k: int(np.prod(s)) for k, (s, _) in shapes.items()}
        self.shapes = {k: s for k, (s, _) in shapes.items()}
        lowered = [self._lowerable(st, sizes) for st in steps]
        float32_moves = self._float32_moves(steps, lowered, shapes, sizes, outputs)
        maps: dict[int, np.ndarray] = {}
        for i, st in enumerate(steps):
            low = st.lowered
            if lowered[i] and low is not None and low.op == "move":
                m = self._value_map(st, sizes)
                if m is None:  # not a pure movement after all: Python
                    lowered[i] = False
                else:
                    maps[i] = m
        _python_readers_keep_python(steps, lowered, float32_moves)
        maps = {i: m for i, m in maps.items() if lowered[i]}
        # Python steps that need only the inputs (and each other) run first, so that a Python step of the inputs
        # scheduled between lowered ones (e.g. a recurrent state's slice) does not cut them into two segments
        order = _inputs_first(steps, lowered)
        steps, schedule, lowered = [steps[i] for i in order], [schedule[i] for i in order], [lowered[i] for i in order]
        maps = {new: maps[old] for new, old in enumerate(order) if old in maps}
        self.steps, self.schedule, self.outputs = steps, schedule, outputs
        # where each tensor lives: (root tensor, offset in it); a contiguous movement aliases its input
        place: dict[str, tuple[str, int]] = {}
        for i, m in maps.items():
            st = steps[i]
            if len(st.inputs) == 1 and m.size and m[0] >= 1 and np.array_equal(m, m[0] + np.arange(m.size)):
                root, off = place.get(st.inputs[0], (st.inputs[0], 0))
                place[st.out] = (root, off + int(m[0]) - 1)
        # a gather whose one reader is a convolution runs inside it: the convolution's windows read the gather's
        # sources through the composed index (a padding's zeros included), and the gather's output never exists
        reads = [list(st.inputs) for st in steps]
        self.into_conv = self._gathers_into_convs(steps, lowered, maps, place, outputs)
        for c, g in self.into_conv.items():
            reads[c], reads[g] = list(steps[g].inputs), []
        produced = {st.out for i, (st, ok) in enumerate(zip(steps, lowered)) if ok and i not in self.into_conv.values()}
        in_arena = produced | {k for r, ok in zip(reads, lowered) if ok for k in r}
        pinned = {k for st, ok in zip(steps, lowered) if not ok for k in st.inputs if k in in_arena}
        pinned |= {key for _, key, _ in outputs if key in in_arena}
        self.columns = self._allocate(steps, reads, in_arena, pinned, place, sizes)
        self.imports = in_arena - produced
        pools = Pools([np.zeros(1, np.int64)], [np.zeros(1)], [np.zeros(1, np.int16)], [1, 1, 1])
        rows: list[list[int]] = []
        self.op_step: list[int] = []
        self.segments: list[tuple[bool, int, int]] = []
        for i, st in enumerate(steps):
            if not lowered[i]:
                self.segments.append((False, i, i + 1))
                continue
            if i in self.into_conv.values():  # run by its convolution
                continue
            into = self.into_conv.get(i)
            row = self._row(st, maps.get(i), sizes, pools, None if into is None else (steps[into], maps[into]))
            if row is None:  # an alias: nothing to run
                continue
            if not self.segments or not self.segments[-1][0]:
                self.segments.append((True, len(rows), len(rows)))
            rows.append(row)
            self.op_step.append(i)
            self.segments[-1] = (True, self.segments[-1][1], len(rows))
        self.ops = np.array(rows, dtype=np.int64).reshape(-1, WIDTH)
        self.index = np.concatenate(pools.index).astype(np.int64)
        self.floats = np.concatenate(pools.floats).astype(np.float64)
        self.weights16 = np.concatenate(pools.weights16).astype(np.int16)
        self.useful = len(rows) > 0
        # no layer's arithmetic is left to Python: a batch's samples may be shared with the cores inside the
        # compiled loop (native_pool.py) rather than as tasks, each with its own Python
        self.shares_rows = self.useful and not any(
            st.kind in HEAVY_KINDS for i, st in enumerate(steps) if not lowered[i])
        # multiply-adds per sample
        self.work = int(sum(r[5] * r[6] * r[7] for r in rows if r[0] == CODES["fc"])) + sum(
            st.lowered.kernel.positions * st.lowered.kernel.weights.size for i, st in enumerate(steps)
            if lowered[i] and st.lowered is not None and st.lowered.op == "conv")
        # what a run needs, resolved once: the op rows of each segment, the named steps the counts go to
        self.views = {k: (c, c + sizes[k], tuple(self.shapes[k])) for k, c in self.columns.items()}
        self.op_rows = {first: self.ops[first:stop] for lowered, first, stop in self.segments if lowered}
        self.op_index = np.array(self.op_step, dtype=np.int64)
        self.named = np.array([i for i, st in enumerate(steps) if st.row is not None], dtype=np.int64)
        self.names = [steps[i].name for i in self.named]
        self.unique_names = len(set(self.names)) == len(self.names)

    @staticmethod
    def _lowerable(st: Step, sizes: Mapping[str, int]) -> bool:
        """Whether the step has a lowered form that fits the sizes its first run gave."""
        low = st.lowered
        if low is None or st.out not in sizes or not all(k in sizes for k in st.inputs):
            return False
        size = sizes[st.out]
        if low.op == "fc":
            m, k = low.arrays[0].shape
            return len(st.inputs) == 1 and sizes[st.inputs[0]] % k == 0 and size == sizes[st.inputs[0]] // k * m
        if low.op == "const":
            return low.arrays[0].size == size
        if low.op == "quant":
            return len(st.inputs) == 1 and sizes[st.inputs[0]] == size
        if low.op == "conv":
            length, keep, filters = (int(v) for v in low.scalars)
            return (len(st.inputs) == 1 and sizes[st.inputs[0]] == length and size == filters * keep
                    and conv_lowerable(low))
        if low.op == "move":
            return True
        wanted = {"pwl": 1, "scale": 1, "scaleshift": 1, "sum": 2, "prod": 2}[low.op]
        return (len(st.inputs) == wanted and all(sizes[k] == size for k in st.inputs)
                and all(a.size == size for a in low.arrays if low.op == "scaleshift"))

    def _value_map(self, st: Step, sizes: Mapping[str, int]) -> np.ndarray | None:
        """1 + the position (inputs laid end to end) each output value comes from, 0 for a zero; None when the
        step does not only move values."""
        base, args = 0, []
        for k in st.inputs:
            args.append((base + 1 + np.arange(sizes[k], dtype=np.float64)).reshape((1,) + tuple(self.shapes[k])))
            base += sizes[k]
        try:
            out, _ = st.run(*args)
        except Exception:  # noqa: BLE001 — not a movement it can take on these values: run it as Python
            return None
        m = np.asarray(out, dtype=np.float64).reshape(-1)
        if m.size != sizes[st.out] or not np.all((m == np.floor(m)) & (m >= 0) & (m <= base)):
            return None
        return m.astype(np.int64)

    @staticmethod
    def _float32_moves(steps: Sequence[Step], lowered: list[bool], shapes: Mapping[str, tuple[Any, np.dtype]],
                       sizes: Mapping[str, int], outputs: Sequence[tuple[str, str, float]]) -> list[int]:
        """A movement of other than float64 data stays Python (its dtype stays), unless only lowered steps read
        it (the work array holds its values exactly: float32 and int16 ones) and it is not an output; its value
        map is read in float32 then, so its inputs must be small enough for exact indices."""
        kept = {key for _, key, _ in outputs}
        candidates = [i for i, st in enumerate(steps) if lowered[i] and st.lowered is not None
                      and st.lowered.op == "move" and not all(shapes[k][1] == np.float64 for k in st.inputs)]
        for i in candidates:
            st = steps[i]
            lowered[i] = (st.out not in kept and sum(sizes[k] for k in st.inputs) < FLOAT32_INDEX
                          and all(np.dtype(shapes[k][1]) in (np.float32, np.float64) for k in st.inputs))
        _python_readers_keep_python(steps, lowered, candidates)
        return candidates

    @staticmethod
    def _gathers_into_convs(steps: Sequence[Step], lowered: Sequence[bool], maps: Mapping[int, np.ndarray],
                            place: Mapping[str, tuple[str, int]], outputs: Sequence[tuple[str, str, float]]
                            ) -> dict[int, int]:
        """{convolution step: the gather step it runs}: a lowered gather (not an alias) whose output only that
        lowered convolution reads (no other step, no output)."""
        readers = _readers(steps)
        kept = {key for _, key, _ in outputs}
        fused: dict[int, int] = {}
        for g, m in maps.items():
            out = steps[g].out
            users = readers.get(out, [])
            if out in place or out in kept or len(users) != 1:
                continue
            c = users[0]
            low = steps[c].lowered
            if lowered[c] and low is not None and low.op == "conv" and c > g:
                fused[c] = g
        return fused

    def _allocate(self, steps: Sequence[Step], reads: Sequence[list[str]], keys: set[str], pinned: set[str],
                  place: dict[str, tuple[str, int]], sizes: Mapping[str, int]) -> dict[str, int]:
        """The first column of every tensor in the work array: first fit, a root's columns free after the last
        step that reads it (``reads``: each step's inputs) or any alias of it (never for tensors read by Python or
        by the outputs)."""
        never = len(steps) + 1
        last: dict[str, int] = {}
        for i, st in enumerate(steps):
            for k in reads[i]:
                if k in keys:
                    root = place.get(k, (k, 0))[0]
                    last[root] = max(last.get(root, -1), i)
        for k in pinned:
            last[place.get(k, (k, 0))[0]] = never
        free: list[tuple[int, int]] = []  # (start, end) gaps, sorted
        end = 0
        start_of: dict[str, int] = {}
        release: dict[int, list[str]] = {}

        def take(size: int) -> int:
            nonlocal end
            for j, (a, b) in enumerate(free):
                if b - a >= size:
                    free[j] = (a + size, b)
                    return a
            end += size
            return end - size

        def give(a: int, b: int) -> None:
            free.append((a, b))
            free.sort()
            merged: list[tuple[int, int]] = []
            for x, y in free:
                if merged and merged[-1][1] == x:
                    merged[-1] = (merged[-1][0], y)
                elif y > x:
                    merged.append((x, y))
            free[:] = merged

        def born(k: str, at: int) -> None:
            if k in place or k in start_of or k not in keys:
                return
            start_of[k] = take(sizes[k])
            release.setdefault(last.get(k, at), []).append(k)

        outs = {st.out for st in steps}
        for k in sorted(keys - outs):  # the plan's inputs
            born(k, -1)
        for i, st in enumerate(steps):
            if reads[i] or not st.inputs:  # not a gather run by its convolution: its output exists
                born(st.out, i)
            for k in release.pop(i, []):
                give(start_of[k], start_of[k] + sizes[k])
        self.width = end
        columns = dict(start_of)
        for k, (root, off) in place.items():
            if root in start_of:
                columns[k] = start_of[root] + off
        return columns

    def _absolute(self, inputs: Sequence[str], value_map: np.ndarray, sizes: Mapping[str, int]) -> np.ndarray:
        """1 + the work array column each value of a movement comes from (inputs laid end to end), 0 for a zero."""
        starts = np.cumsum([0] + [sizes[k] for k in inputs])
        which = np.clip(np.searchsorted(starts, value_map - 1, side="right") - 1, 0, len(inputs) - 1)
        cols = np.array([self.columns[k] for k in inputs], dtype=np.int64)
        return np.where(value_map > 0, cols[which] + (value_map - 1 - starts[which]) + 1, 0).astype(np.int64)

    def _row(self, st: Step, value_map: np.ndarray | None, sizes: Mapping[str, int], pools: Pools,
             gather: tuple[Step, np.ndarray] | None = None) -> list[int] | None:
        """The op row of a lowered step; ``gather``: the gather step a convolution runs (and its value map)."""
        low = st.lowered
        assert low is not None
        col = self.columns
        out, size = col[st.out], sizes[st.out]
        a = col[st.inputs[0]] if st.inputs and gather is None else 0  # a gather's output has no columns
        b = col[st.inputs[1]] if len(st.inputs) > 1 else 0
        p = [0] * 6
        if low.op == "move":
            assert value_map is not None
            if len(st.inputs) == 1 and col[st.out] == col[st.inputs[0]] + (int(value_map[0]) - 1 if size else 0) \
                    and np.array_equal(value_map, value_map[0] + np.arange(size)):
                return None
            from gnaexp.emulator import native_plan

            absolute = self._absolute(st.inputs, value_map, sizes)
            runs = native_plan.gather_runs(absolute)
            if runs is None:
                p[0] = pools.add(0, absolute)
            else:  # runs of consecutive columns: copied by loops that vectorize
                p[1], p[2] = len(runs), pools.add(0, runs.ravel())
            return [CODES["gather"], a, b, out, size] + p
        if low.op == "pwl":
            index = _pwl_index(low.arrays)
            small = _pwl_small(low.arrays, size) if index is None else None
            extra = [index.table.ravel(), index.window] if index is not None else \
                [small.ravel()] if small is not None else []
            tables = np.concatenate(list(low.arrays) + extra)
            p[0], p[1] = pools.add(1, tables), len(low.arrays[0])
            p[2], p[3], p[4] = (pools.add(1, np.array(low.scalars[j:j + 1], dtype=np.float64)) for j in range(3))
            if index is not None:  # many segments: found through the index (native_pwl.py)
                p[5] = pools.add(0, np.array([index.bits, index.low_key, len(index.table)]))
            elif small is not None:  # few: a table in registers (native_pwl.pwl_small_rows), marked by −halvings
                from gnaexp.emulator import pwl_index

                p[5] = pools.add(0, np.array([-pwl_index.small_halvings(p[1]), 0, small.size // 8]))
        elif low.op in ("sum", "scale", "quant"):
            p[0] = pools.add(1, np.array(low.scalars[:1], dtype=np.float64))
        elif low.op == "scaleshift":
            p[0], p[1] = pools.add(1, low.arrays[0]), pools.add(1, low.arrays[1])
        elif low.op == "const":
            p[0] = pools.add(1, low.arrays[0].astype(np.float64))
        elif low.op == "conv":
            if gather is None:
                p[0] = conv_description(low, pools)
            else:  # its windows read the whole row: the index composed with the gather's, a zero past the row
                source = self._absolute(gather[0].inputs, gather[1], sizes) - 1
                source = np.append(np.where(source < 0, self.width, source), self.width)
                p[0] = conv_description(low, pools, source, self.width)
        elif low.op == "fc":
            wt, bias = low.arrays
            m, k = wt.shape
            p[0], p[1], p[2] = sizes[st.inputs[0]] // k, k, m
            p[5] = int(wt.dtype == np.int16)
            exact = _int16_product(wt) if p[5] else None
            if exact is not None:  # the int16 product, whose sums are exact (native_plan._fc_int)
                p[5], p[3] = 2, pools.add(2, exact.wt)
                p[4] = pools.add(1, np.append(bias.astype(np.float64), exact.peak_limit))
            else:
                p[3] = pools.add(2, wt) if p[5] else pools.add(1, wt.astype(np.float64))
                p[4] = pools.add(1, bias.astype(np.float64))
        return [CODES[low.op], a, b, out, size] + p

    def run(self, feeds: Mapping[str, np.ndarray], native_plan: Any, pool: Any = None) -> tuple[dict, dict, dict]:
        """What ``Plan._run_chunk`` returns (integer outputs, saturations by layer, no ints), computed compiled;
        ``pool``: a ``native_pool.Pool`` that shares the compiled segments' blocks of samples with the cores."""
        n = next(iter(feeds.values())).shape[0]
        arena = np.empty((n, self.width), dtype=np.float64)
        env: dict[str, Any] = dict(feeds)
        counts = np.zeros(len(self.op_step), dtype=np.int64)
        block = native_plan.block_rows(self.width)
        per_step = np.zeros(len(self.steps), dtype=np.int64)
        imports, views = self.imports, self.views

        def get(key: str) -> Any:
            if key in env:
                return env[key]
            a, b, shape = views[key]
            return arena[:, a:b].reshape((n,) + shape)

        shared = pool is not None and n > block
        copies = []  # float32 inputs the pool's first job copies in, block by block, on every core
        for k, v in feeds.items():
            if k in imports:
                a, b, _ = views[k]
                if shared and v.dtype == np.float32:
                    copies.append((np.ascontiguousarray(v.reshape(n, -1)), a))
                else:
                    arena[:, a:b] = v.reshape(n, -1)
        for lowered, first, stop in self.segments:
            if lowered:
                ops = self.op_rows[first]
                if shared:
                    pool.run_ops(arena, ops, self.index, self.floats, self.weights16, counts[first:stop], block,
                                 copies)
                    copies = []
                else:
                    native_plan.run_ops(arena, ops, self.index, self.floats, self.weights16, counts[first:stop],
                                        block)
                continue
            run, inputs, out, _, _, dead = self.schedule[first]
            into = self.steps[first].run_into
            if into is not None and out in imports:  # written straight into its columns
                a, b, _ = views[out]
                per_step[first] = into(*[get(k) for k in inputs], arena[:, a:b])
                for k in dead:
                    env.pop(k, None)
                continue
            val, n_sat = run(get(inputs[0])) if len(inputs) == 1 else run(*[get(k) for k in inputs])
            for k in dead:
                env.pop(k, None)
            env[out] = val
            per_step[first] = n_sat
            if out in imports:
                a, b, _ = views[out]
                arena[:, a:b] = np.reshape(val, (n, -1))
        if counts.min(initial=0) < 0:  # a quantized input held NaN or infinity: the interpreted run says which
            raise NonFiniteInput()
        per_step[self.op_index] += counts
        values = per_step[self.named].tolist()
        if self.unique_names:
            sats = dict(zip(self.names, values))
        else:
            sats = {}
            for name, v in zip(self.names, values):
                sats[name] = sats.get(name, 0) + v
        return {name: get(key) for name, key, _ in self.outputs}, sats, {}


def _readers(steps: Sequence[Step]) -> dict[str, list[int]]:
    """{tensor: the steps that read it}."""
    readers: dict[str, list[int]] = {}
    for i, st in enumerate(steps):
        for k in st.inputs:
            readers.setdefault(k, []).append(i)
    return readers


def _python_readers_keep_python(steps: Sequence[Step], lowered: list[bool], moves: Sequence[int]) -> None:
    """Of the given movements (of float32 data), those that a Python step reads stay Python, to a fixed point."""
    readers = _readers(steps)
    changed = True
    while changed:
        changed = False
        for i in moves:
            if lowered[i] and not all(lowered[r] for r in readers.get(steps[i].out, [])):
                lowered[i], changed = False, True


def _inputs_first(steps: Sequence[Step], lowered: Sequence[bool]) -> list[int]:
    """The steps' order with the Python steps that read only the plan's inputs or such steps' outputs first (each
    group in its own order: every step still follows what it reads)."""
    made = {st.out for st in steps}
    early: list[int] = []
    ready: set[str] = set()
    for i, st in enumerate(steps):
        if not lowered[i] and all(k not in made or k in ready for k in st.inputs):
            early.append(i)
            ready.add(st.out)
    chosen = set(early)
    return early + [i for i in range(len(steps)) if i not in chosen]


def _int16_product(wt: np.ndarray) -> Any:
    """A fully connected layer's (outputs, inputs) int16 weights laid out for the int16 product
    (``int_product.IntWeights``) when this processor has it and a loud input split in two bytes has exact sums
    (Σ|w|·255 < 2^31: 256·Σ w·(x >> 8) + Σ w·(x & 255), native_plan._fc_int); else None."""
    from gnaexp.emulator import int_product, native_gemm

    if native_gemm.LANES is None:
        return None
    exact = int_product.int_weights(wt.T)
    return exact if exact is not None and exact.splits else None


def _pwl_small(tables: Sequence[np.ndarray], size: int) -> np.ndarray | None:
    """The small table of a PWL of few segments (``pwl_index.small``) where its loop runs here (an AVX-512
    processor; ``size``, the values a sample, whole steps of the loop); else None: the passes of
    ``native.pwl_rows``."""
    from gnaexp.emulator import native_gemm, native_pwl, pwl_index

    if native_gemm.LANES != 16 or size % native_pwl.LANES:
        return None
    return pwl_index.small(*tables)


def _pwl_index(tables: Sequence[np.ndarray]) -> Any:
    """The segment index of a PWL's tables (xBase, yBase, slope, scale: ``pwl_index.PwlIndex``) where its compiled
    loop runs here (an x86 processor with AVX2 or AVX-512, as the int16 product) and the PWL has segments enough
    to gain; else None."""
    from gnaexp.emulator import native_gemm, pwl_index

    xv, ybase, slope, inv_scale = tables
    return None if native_gemm.LANES is None else pwl_index.build(xv, ybase, slope, inv_scale)
