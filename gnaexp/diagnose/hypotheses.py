"""Which mistake reproduces an observed output? A family of defects, generated from the model and scored.

Each hypothesis is a concrete output: what the device would return if that mistake happened, computed from the
correct-layout emulation (what the device should return) or by re-running the emulator with the mistake applied.
The observed output is compared with every one; ``ladder_verdicts.hypothesis_verdict`` words the result.

The family:
- as configured (no defect);
- output: NCW read as NWC and the reverse, output channels reversed, rotated, or permuted (the best assignment
  by correlation), time shifted by ±1…3 frames (rolled, and zero-filled), time reversed;
- network input: NCW read as NWC and the reverse (re-emulated);
- inside the net (re-emulated with the mistake applied to one step of the plan): each conv reading its input
  NCW as NWC and the reverse, each concat's output read transposed, a concat joined on another axis, or its
  inputs copied in another order (reversed, rotated);
- the emulator's plugin layout paths other than ``correct`` (``legacy-concat``: the conv after a concat reads
  the channel-major buffer as interleaved);
- input scale factor: the emulation at every sweep scale factor, to recover the one a device really used.
Saturation at the configured scale factor is a fact of the plan, not a hypothesis; it is reported beside them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from gnaexp.core import metrics
from gnaexp.core.gna_settings import GnaSettings
from gnaexp.diagnose.results import HypothesisScore

MAX_SHIFT = 3  # frames of time shift tried each way
SQNR_CAP_DB = 200.0  # identical arrays score this instead of +inf, so ranks and margins stay finite
INPUT_FAMILY = "input layout"


@dataclass
class Hypothesis:
    name: str  # short id, e.g. "channels-rotated-1"
    family: str  # "none", "output layout", "channel order", "time", INPUT_FAMILY, "plugin layout", "scale factor"
    mechanism: str  # what happened, in words a support engineer can act on
    output: np.ndarray
    edit: Callable[[Any], Any] | None = None  # Plan → Plan for mistakes inside the net (per-layer table)


def _as_ncw(a: np.ndarray) -> np.ndarray | None:
    """(N, C, W) view of an output or input: (1, C, W), samples of it (N, 1, C, W), or (N, C, 1, W); None when
    there are no channel and time axes."""
    if a.ndim == 4 and a.shape[1] == 1:
        return a.reshape(a.shape[0], a.shape[2], a.shape[3])
    if a.ndim == 4 and a.shape[2] == 1:
        return a.reshape(a.shape[0], a.shape[1], a.shape[3])
    return a if a.ndim == 3 else None


def _arrive_as(perm: Sequence[int]) -> str:
    c = len(perm)
    shown = list(range(min(c, 8)))
    tail = ", …" if c > 8 else ""
    return (f"output channels {', '.join(map(str, shown))}{tail} arrive as "
            f"{', '.join(str(perm[i]) for i in shown)}{tail}")


def best_permutation(expected: np.ndarray, observed: np.ndarray) -> list[int]:
    """perm with observed[:, i] ≈ expected[:, perm[i]]: greedy assignment on channel correlations (N, C, W)."""
    c = expected.shape[1]
    e = np.moveaxis(expected, 1, 0).reshape(c, -1).astype(np.float64)
    o = np.moveaxis(observed, 1, 0).reshape(c, -1).astype(np.float64)
    e = e - e.mean(axis=1, keepdims=True)
    o = o - o.mean(axis=1, keepdims=True)
    ne, no = np.sqrt(np.sum(e * e, axis=1)), np.sqrt(np.sum(o * o, axis=1))
    corr = np.einsum("ik,jk->ij", o, e) / np.maximum(np.outer(no, ne), 1e-30)  # rows observed, cols expected
    perm = [-1] * c
    free_rows, free_cols = set(range(c)), set(range(c))
    for flat in np.argsort(-corr, axis=None):
        i, j = divmod(int(flat), c)
        if i in free_rows and j in free_cols:
            perm[i] = j
            free_rows.discard(i)
            free_cols.discard(j)
    return perm


def output_mistakes(expected: np.ndarray, observed: np.ndarray) -> list[Hypothesis]:
    """Mistakes made after the last layer, applied to the expected (correct-layout emulated) output."""
    hyps = [Hypothesis("as-configured", "none", "no defect: the device computes what the emulator computes", expected)]
    e = _as_ncw(expected)
    if e is None:
        return hyps
    n, c, w = e.shape
    shape = expected.shape

    def add(name: str, family: str, mechanism: str, arr: np.ndarray) -> None:
        hyps.append(Hypothesis(name, family, mechanism, np.ascontiguousarray(arr).reshape(shape)))

    if c > 1 and w > 1:
        add("output-ncw-as-nwc", "output layout", "the output buffer is channel-major (NCW) but is read as "
            "interleaved (NWC): transpose it on the host", e.reshape(n, w, c).transpose(0, 2, 1))
        add("output-nwc-as-ncw", "output layout", "the output buffer is interleaved (NWC) but is read as "
            "channel-major (NCW): de-interleave it on the host", e.transpose(0, 2, 1).reshape(n, c, w))
    if c > 1:
        add("channels-reversed", "channel order", _arrive_as(list(range(c))[::-1]) + " (reversed)", e[:, ::-1])
        for k in range(1, c):
            perm = [(i - k) % c for i in range(c)]
            add(f"channels-rotated-{k}", "channel order", _arrive_as(perm) + f" (rotated by {k})", e[:, perm])
        o = _as_ncw(observed)
        if o is not None and o.shape == e.shape:
            perm = best_permutation(e, o)
            known = [list(range(c)), list(range(c))[::-1]] + [[(i - k) % c for i in range(c)] for k in range(1, c)]
            if perm not in known:
                add("channels-permuted", "channel order", _arrive_as(perm) + " (best assignment by correlation)",
                    e[:, perm])
    if w > 1:
        for k in range(1, min(MAX_SHIFT, w - 1) + 1):
            for sign, word in ((1, "late"), (-1, "early")):
                rolled = np.roll(e, sign * k, axis=2)
                add(f"time-rolled {sign * k:+d}", "time", f"output frames arrive {k} frame(s) {word} (wrapped "
                    "around): a buffer offset", rolled)
                zero = rolled.copy()
                if sign > 0:
                    zero[:, :, :k] = 0
                else:
                    zero[:, :, -k:] = 0
                add(f"time-shifted-{sign * k:+d}", "time", f"output frames arrive {k} frame(s) {word} (zero-filled):"
                    " a buffer offset or a lost/extra frame", zero)
        add("time-reversed", "time", "output frames arrive in reverse order", e[:, :, ::-1])
    return hyps


def input_mistakes(inputs: Mapping[str, np.ndarray]) -> list[tuple[str, str, dict[str, np.ndarray]]]:
    """(name, mechanism, changed inputs) for layout mistakes at the network input, to be re-emulated."""
    out = []
    for key, x in inputs.items():
        v = _as_ncw(x)
        if v is None or v.shape[1] < 2 or v.shape[2] < 2:
            continue
        n, c, w = v.shape
        for name, words, arr in (
            ("input-ncw-as-nwc", "the host writes the input channel-major (NCW) but the network reads it "
             "interleaved (NWC): transpose the input before inference", v.reshape(n, w, c).transpose(0, 2, 1)),
            ("input-nwc-as-ncw", "the host writes the input interleaved (NWC) but the network reads it "
             "channel-major (NCW)", v.transpose(0, 2, 1).reshape(n, c, w)),
        ):
            changed = dict(inputs)
            changed[key] = np.ascontiguousarray(arr).reshape(x.shape).astype(np.float32)
            out.append((f"{name}:{key}" if len(inputs) > 1 else name, words, changed))
    return out


def _ncw_as_nwc(x: np.ndarray) -> np.ndarray:
    """A batch (N, *sample) whose channel-major buffer is read as interleaved: last axis is time."""
    n, w = x.shape[0], x.shape[-1]
    return np.ascontiguousarray(x.reshape(n, w, -1).transpose(0, 2, 1)).reshape(x.shape)


def _nwc_as_ncw(x: np.ndarray) -> np.ndarray:
    n, w = x.shape[0], x.shape[-1]
    return np.ascontiguousarray(x.reshape(n, -1, w).transpose(0, 2, 1)).reshape(x.shape)


def _reads(transform: Callable[[np.ndarray], np.ndarray]) -> Callable[[Any], Callable[..., Any]]:
    """Wrap a step so that it reads its (one) input through ``transform``."""
    return lambda st: (lambda x, run=st.run: run(transform(x)))


def _writes(transform: Callable[[np.ndarray], np.ndarray]) -> Callable[[Any], Callable[..., Any]]:
    """Wrap a step so that what it writes goes through ``transform``."""
    def wrap(st: Any) -> Callable[..., Any]:
        def run(*xs: np.ndarray, run=st.run) -> tuple[np.ndarray, int]:
            val, sat = run(*xs)
            return transform(val), sat
        return run
    return wrap


def _concat_as(order: Sequence[int], axis: int | None) -> Callable[[Any], Callable[..., Any]]:
    """Wrap a concat so that it joins its inputs in ``order`` along sample axis ``axis`` (None: its own), the
    result landing in the same buffer the next layer reads with the original shape."""
    def wrap(st: Any) -> Callable[..., Any]:
        own = int(st.row.extras.axis)

        def run(*xs: np.ndarray) -> tuple[np.ndarray, int]:
            shape = list(xs[0].shape)
            shape[own + 1] = sum(x.shape[own + 1] for x in xs)
            joined = np.concatenate([xs[i] for i in order], axis=(own if axis is None else axis) + 1)
            return np.ascontiguousarray(joined).reshape(shape), 0
        return run
    return wrap


def _axis_word(axis: int, rank: int) -> str:
    return "time" if axis == rank - 1 else "channel" if axis == 1 else f"{axis}"


def graph_mistakes(plan: Any) -> list[tuple[str, str, str, Callable[[Any], Any]]]:
    """(name, family, mechanism, edit) for layout mistakes inside the net, from the plan's steps."""
    from gnaexp.emulator.graph import edited

    out: list[tuple[str, str, str, Callable[[Any], Any]]] = []

    def add(name: str, family: str, words: str, step: str, wrap: Callable[[Any], Any]) -> None:
        def edit(p: Any, s: str = step, w: Callable[[Any], Any] = wrap) -> Any:
            return edited(p, s, w)

        out.append((f"{name}:{step}", family, words, edit))

    for st in plan.steps:
        if st.kind == "conv":
            add("conv-input-ncw-as-nwc", "layer layout", f"the conv {st.name!r} reads its channel-major (NCW) input "
                "buffer as interleaved (NWC): the transpose in front of that layer is missing", st.name,
                _reads(_ncw_as_nwc))
            add("conv-input-nwc-as-ncw", "layer layout", f"the conv {st.name!r} reads its interleaved (NWC) input "
                "buffer as channel-major (NCW): a transpose too many in front of that layer", st.name,
                _reads(_nwc_as_ncw))
        elif st.kind == "concat":
            k, own = len(st.inputs), int(st.row.extras.axis)
            add("concat-output-ncw-as-nwc", "concat", f"the output of concat {st.name!r} is written channel-major "
                "(NCW) and read interleaved (NWC) by the next layer", st.name, _writes(_ncw_as_nwc))
            add("concat-output-nwc-as-ncw", "concat", f"the output of concat {st.name!r} is written interleaved "
                "(NWC) and read channel-major (NCW) by the next layer", st.name, _writes(_nwc_as_ncw))
            rank = int(st.row.extras.rank)
            other = rank - 1 if own != rank - 1 else 1  # channels ↔ time (sample axes; 0 is the batch of 1)
            add(f"concat-axis-{other}", "concat", f"concat {st.name!r} joins its inputs on the "
                f"{_axis_word(other, rank)} axis instead of the {_axis_word(own, rank)} axis; the next layer reads "
                "the joined buffer with the intended shape", st.name, _concat_as(list(range(k)), other))
            if k > 1:
                orders = [list(range(k))[::-1]] + [[(i + r) % k for i in range(k)] for r in range(1, k)]
                for order in [o for i, o in enumerate(orders) if o not in orders[:i]]:
                    words = (f"concat {st.name!r} places its inputs in the order {', '.join(map(str, order))} "
                             f"instead of {', '.join(map(str, range(k)))}")
                    add("concat-order-" + "-".join(map(str, order)), "concat", words, st.name,
                        _concat_as(order, None))
    return out


@dataclass
class Scored(HypothesisScore):
    """One hypothesis scored against the observed output, with the output it predicts and the edit that makes it
    (``aliases``: the others with the very same output)."""

    output: np.ndarray = field(repr=False, kw_only=True)
    edit: Callable[[Any], Any] | None = field(default=None, repr=False, kw_only=True)

    def score(self) -> HypothesisScore:
        """Without the output array and the edit (what a diagnosis keeps)."""
        return HypothesisScore(self.hypothesis, self.family, self.mechanism, self.sqnr_db, self.cosine,
                               list(self.aliases))


def score(observed: np.ndarray, hyps: Sequence[Hypothesis]) -> list[Scored]:
    """Every hypothesis scored by SQNR of the observed output against it (capped at SQNR_CAP_DB), best first.

    Hypotheses with identical outputs are one candidate (named together), so a net where two mistakes
    coincide never claims to tell them apart.
    """
    rows: list[Scored] = []
    for h in hyps:
        if h.output.shape != observed.shape:
            continue
        same = next((r for r in rows if np.array_equal(r.output, h.output)), None)
        if same is not None:
            same.aliases.append(h.name)
            continue
        s = metrics.sqnr_db(h.output, observed)
        s = SQNR_CAP_DB if (math.isinf(s) and s > 0) or s > SQNR_CAP_DB else s
        rows.append(Scored(h.name, h.family, h.mechanism, s, metrics.cosine(h.output, observed), [], output=h.output, edit=h.edit))
    rows.sort(key=lambda r: -r.sqnr_db if not math.isnan(r.sqnr_db) else math.inf)
    return rows


def public(rows: Sequence[Scored]) -> list[HypothesisScore]:
    """Scored rows without their arrays (what a diagnosis keeps)."""
    return [r.score() for r in rows]


LAYOUT_MECHANISMS = {
    "legacy-concat": "the conv after the concat reads the channel-major concat buffer as interleaved (the legacy "
                     "concat→conv path of the 2022.3/2023.0 GNA plugin, docs/gna-rules.md §4.3)",
}


def transposed_back(observed: np.ndarray, expected: np.ndarray) -> tuple[np.ndarray, str | None]:
    """An observed array of transposed shape (…, W, C for …, C, W) is turned back and named, not refused."""
    if observed.shape == expected.shape or observed.ndim != expected.ndim or observed.ndim < 2:
        return observed, None
    if observed.shape == np.swapaxes(expected, -1, -2).shape:
        return (np.ascontiguousarray(np.swapaxes(observed, -1, -2)),
                f"the observed array has shape {observed.shape}, the model output {expected.shape}: it was returned "
                "transposed (NWC, interleaved) and is compared after transposing it back")
    return observed, None


def run_family(model_xml: Any, feed: Mapping[str, np.ndarray], expected: np.ndarray, observed: np.ndarray,
               settings: GnaSettings, layout_outputs: Mapping[str, np.ndarray],
               scale_factors: Sequence[float]) -> list[Scored]:
    """Build the whole family for one model and score the observed output against it (best first).

    settings: the emulation the device was configured as (its main scale factor is the one each other sf tried
    replaces); layout_outputs: the output of each plugin layout path other than ``correct`` at that scale factor
    (the ladder has emulated them already).
    """
    from gnaexp.emulator import emulate
    from gnaexp.emulator.api import load_program, prepare_inputs
    from gnaexp.emulator.graph import build_plan

    settings = settings.with_layout("correct")
    scale_factor = settings.main_scale_factor

    def emulated(inputs: Mapping[str, np.ndarray], sf: float) -> np.ndarray:
        return next(iter(emulate(model_xml, inputs, settings=settings.at(sf)).outputs.values()))

    prog = load_program(model_xml, feed, settings.porting)
    feeds, shapes, batched = prepare_inputs(prog, feed)
    plan = build_plan(prog, shapes, settings)

    hyps = output_mistakes(expected, observed)
    for name, words, changed in input_mistakes(feed):
        hyps.append(Hypothesis(name, INPUT_FAMILY, words, emulated(changed, scale_factor)))
    for layout, out in layout_outputs.items():
        hyps.append(Hypothesis(layout, "plugin layout", LAYOUT_MECHANISMS.get(layout, f"plugin layout path {layout}"),
                               out))
    for name, family, words, edit in graph_mistakes(plan):
        out = next(iter(edit(plan).run(feeds)[0].values()))
        hyps.append(Hypothesis(name, family, words, out if batched else out[0], edit))
    for sf in scale_factors:
        if float(sf) != float(scale_factor):
            hyps.append(Hypothesis(f"sf-{sf:g}", "scale factor", f"the device used sf ≈ {sf:g}, not the configured "
                                   f"{scale_factor:g}", emulated(feed, float(sf))))
    return score(observed, hyps)
