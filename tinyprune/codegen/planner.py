"""Static memory planner: one arena for every activation, scratch buffer and model I/O tensor.

``plan_memory(graph)`` chooses an op execution order, computes tensor lifetimes over it and assigns
byte offsets so that no two tensors that are live at the same step overlap, except where an op is
known to tolerate it:

  * RESHAPE / SQUEEZE outputs are *aliases* of their input (same bytes, no copy); an alias extends
    the lifetime of the tensor it aliases.
  * *In-place* elementwise ops (ADD, MUL, RELU, RELU6, LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU, PRELU,
    QUANTIZE) write their
    output over an input of the same size that dies at that op (never a model input/output).
  * *Overlap* (optional, ``overlap=True``): CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D and
    MAX_POOL_2D write their output starting ``D`` bytes below an input that dies at that op; ``D``
    is the smallest distance for which no output byte is written over input bytes still to be
    read, given the kernel contract in docs/memory-planning.md (output pixels written in raster
    order, at most ``PIXELS_IN_FLIGHT`` pixels in progress). See ``overlap_distance``.
  * *Concat in place* (optional, ``concat=True``): a CONCATENATION whose inputs are contiguous
    slices of its output gets its inputs written straight into those slices.

Offsets are assigned greedily (several orderings and several subsets of the in-place/overlap/concat
pairs are tried, the smallest arena wins). With ``reorder=True`` topological orders that lower the
peak are searched (exact dynamic programming over the executed-op sets for small graphs, a greedy
"free the most memory" heuristic for large ones, then a short local search); the original order
is always a candidate, so reordering is never worse. ``MemoryPlan.validate`` checks any plan
independently of how it was made.

Pure functions, no file emission, no TensorFlow. This module may import only tinyprune.errors and
tinyprune.codegen.ir (the pruning stage calls it through codegen.estimate).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from math import prod

from tinyprune.codegen import ir
from tinyprune.errors import TinypruneError, UserInputError

ALIAS_OPS = frozenset({"RESHAPE", "SQUEEZE"})
INPLACE_OPS = frozenset({"ADD", "MUL", "RELU", "RELU6", "LOGISTIC", "HARD_SWISH", "QUANTIZE", "TANH", "LEAKY_RELU",
                         "PRELU"})
OVERLAP_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D"})
# Kernel contract for overlap: at the moment a kernel writes any byte of output pixel q (raster
# order over N, H, W), it reads in the future only input bytes inside the windows of output
# pixels >= q - PIXELS_IN_FLIGHT + 1. 2 covers kernels that compute two output pixels at a time.
PIXELS_IN_FLIGHT = 2
# Exhaustive order search is abandoned (greedy used instead) beyond this many explored op sets
# (or DP_WORK / number of ops, whichever is smaller: keeps the search well under a second).
MAX_DP_STATES = 4000
DP_WORK = 300_000
# Local search after the order search: at most this many extra placements (and 8x as many orders).
ORDER_TRIALS = 48


class PlanError(TinypruneError):
    """A memory plan violates its invariants (a bug in the planner: exit code 1)."""


@dataclass
class MemoryPlan:
    arena_bytes: int                        # bytes the C code must provide for the arena
    offsets: dict[str, int]                 # every non-const tensor (aliases: their base's offset)
    scratch_offsets: dict[int, int]         # op index -> scratch buffer offset (ops with scratch)
    order: list[int]                        # op execution order (topological)
    aliases: dict[str, str]                 # RESHAPE/SQUEEZE output -> tensor it aliases (root)
    inplace: dict[int, str]                 # op index -> input its output overwrites (same offset)
    lifetimes: dict[str, tuple[int, int]]   # tensor -> (first, last) positions in ``order``
    peak_lower_bound: int                   # max over steps of bytes that must be live together
    two_largest_bound: int = 0              # max over steps of the two largest live tensors
    overlaps: dict[int, tuple[str, int]] = field(default_factory=dict)  # op -> (input, min distance)
    concat_inplace: dict[int, list[str]] = field(default_factory=dict)  # op -> inputs already in place
    scratch: dict[int, int] = field(default_factory=dict)  # op index -> scratch bytes
    alignment: int = 16
    strategy: str = ""                      # which placement heuristic won (for reports)

    def to_json(self) -> dict:
        return {
            "arena_bytes": self.arena_bytes, "peak_lower_bound": self.peak_lower_bound,
            "two_largest_bound": self.two_largest_bound, "order": list(self.order),
            "offsets": dict(sorted(self.offsets.items())),
            "scratch_offsets": {str(k): v for k, v in sorted(self.scratch_offsets.items())},
            "scratch_bytes": {str(k): v for k, v in sorted(self.scratch.items())},
            "aliases": dict(sorted(self.aliases.items())),
            "inplace": {str(k): v for k, v in sorted(self.inplace.items())},
            "overlaps": {str(k): {"input": v[0], "distance": v[1]} for k, v in sorted(self.overlaps.items())},
            "concat_inplace": {str(k): v for k, v in sorted(self.concat_inplace.items())},
            "lifetimes": {k: list(v) for k, v in sorted(self.lifetimes.items())},
            "alignment": self.alignment, "strategy": self.strategy,
        }

    def validate(self, graph: ir.Graph) -> None:
        """Raise PlanError if the plan is inconsistent with ``graph``: not a topological order,
        wrong lifetimes, misaligned or out-of-arena offsets, or two tensors (or scratch buffers)
        live at the same step sharing bytes other than through a declared alias/in-place/overlap."""
        view = _View(graph)
        n = len(graph.ops)
        if sorted(self.order) != list(range(n)):
            raise PlanError(f"order {self.order} is not a permutation of the {n} ops")
        pos = {k: p for p, k in enumerate(self.order)}
        for k in range(n):
            for d in view.deps[k]:
                if pos[d] >= pos[k]:
                    raise PlanError(f"op {k} runs before op {d} whose output it reads")
        life = view.lifetimes(self.order)
        for alias, root in view.alias.items():
            if self.aliases.get(alias) != root:
                raise PlanError(f"alias {alias} -> {root} missing from the plan")
            if self.offsets.get(alias) != self.offsets.get(root):
                raise PlanError(f"alias {alias} is not at the offset of {root}")
        rects = []  # (name, t0, t1, lo, hi)
        for b in view.bases:
            if b not in self.offsets:
                raise PlanError(f"tensor {b} has no offset")
            if tuple(self.lifetimes.get(b, ())) != life[b]:
                raise PlanError(f"lifetime of {b} is {self.lifetimes.get(b)}, expected {life[b]}")
            off, size = self.offsets[b], view.size[b]
            if off % self.alignment or off < 0 or off + size > self.arena_bytes:
                raise PlanError(f"tensor {b} at {off} (+{size}) misaligned or outside the arena of "
                                f"{self.arena_bytes} bytes")
            if size:
                rects.append((b, life[b][0], life[b][1], off, off + size))
        for k, s in self.scratch.items():
            if s <= 0:
                continue
            off = self.scratch_offsets.get(k)
            if off is None or off % self.alignment or off + s > self.arena_bytes:
                raise PlanError(f"scratch of op {k} has a bad offset {off}")
            rects.append((f"scratch:{k}", pos[k], pos[k], off, off + s))
        allowed = {}  # frozenset({in, out}) -> (position, check)
        for k, inp in self.inplace.items():
            out = view.outs[k][0]
            if self.offsets[inp] != self.offsets[out] or life[inp][1] != pos[k]:
                raise PlanError(f"in-place op {k}: {out} not at the offset of dying input {inp}")
            if inp not in {view.root(i) for i in graph.ops[k].inputs if i}:
                raise PlanError(f"in-place op {k}: {inp} is not one of its inputs")
            allowed[frozenset((inp, out))] = pos[k]
        for k, (inp, dist) in self.overlaps.items():
            op = graph.ops[k]
            out = view.outs[k][0]
            need = overlap_distance(op, graph)
            if view.root(op.inputs[0]) != inp or need is None or life[inp][1] != pos[k]:
                raise PlanError(f"overlap at op {k} ({op.kind}) is not allowed for input {inp}")
            if self.offsets[inp] - self.offsets[out] < need:
                raise PlanError(f"overlap at op {k}: output {out} starts "
                                f"{self.offsets[inp] - self.offsets[out]} bytes below input {inp}, "
                                f"needs at least {need}")
            allowed[frozenset((inp, out))] = pos[k]
        for k, inps in self.concat_inplace.items():
            op = graph.ops[k]
            out = op.outputs[0]
            if op.kind != "CONCATENATION" or [view.root(t) for t in op.inputs] != list(inps):
                raise PlanError(f"op {k} ({op.kind}) cannot take its inputs in place")
            at = self.offsets[out]
            for t in op.inputs:
                b = view.root(t)
                if self.offsets[b] != at or life[b][1] != pos[k]:
                    raise PlanError(f"concat op {k}: input {b} is not its slice of {out} at {at}")
                at += view.size[b]
                allowed[frozenset((b, out))] = pos[k]
        rects.sort(key=lambda r: r[3])
        for i, a in enumerate(rects):
            for b in rects[i + 1:]:
                if b[3] >= a[4]:
                    break
                if a[1] <= b[2] and b[1] <= a[2]:
                    p = allowed.get(frozenset((a[0], b[0])))
                    if p is not None and max(a[1], b[1]) == p == min(a[2], b[2]):
                        continue
                    raise PlanError(f"{a[0]} [{a[3]}, {a[4]}) steps {a[1]}..{a[2]} overlaps "
                                    f"{b[0]} [{b[3]}, {b[4]}) steps {b[1]}..{b[2]}")


# ----------------------------------------------------------------------------------------------
# graph analysis

class _View:
    """The graph seen by the planner: aliases resolved to root tensors ("bases")."""

    def __init__(self, graph: ir.Graph):
        self.graph = graph
        ops = graph.ops
        for i, op in enumerate(ops):
            for t in [*op.inputs, *op.outputs]:
                if t and t not in graph.tensors:
                    raise UserInputError(f"op {i} ({op.kind} {op.name!r}) refers to unknown tensor {t!r}",
                                         hint="the graph is malformed: every op input/output must be in graph.tensors")
        for t in [*graph.inputs, *graph.outputs]:
            if t not in graph.tensors:
                raise UserInputError(f"model input/output {t!r} is not a tensor of the graph")
        producer: dict[str, int] = {}
        for i, op in enumerate(ops):
            for t in op.outputs:
                if t in producer:
                    raise UserInputError(f"tensor {t!r} is written by ops {producer[t]} and {i}")
                if t in graph.inputs or graph.tensors[t].is_const:
                    raise UserInputError(f"op {i} ({op.kind}) writes model input or constant {t!r}")
                producer[t] = i
        self.alias: dict[str, str] = {}
        for i, op in enumerate(ops):
            if op.kind in ALIAS_OPS and op.inputs and op.inputs[0] and len(op.outputs) == 1:
                src = graph.tensors[op.inputs[0]]
                dst = graph.tensors[op.outputs[0]]
                if not src.is_const and src.nbytes == dst.nbytes:
                    self.alias[op.outputs[0]] = op.inputs[0]
        for a in list(self.alias):  # resolve chains to the root
            r, seen = self.alias[a], {a}
            while r in self.alias:
                if r in seen:
                    raise UserInputError(f"RESHAPE/SQUEEZE ops form a cycle through {r!r}")
                seen.add(r)
                r = self.alias[r]
            self.alias[a] = r
        self.deps: list[set[int]] = []
        self.ins: list[list[str]] = []   # non-const base inputs (unique, in input order)
        self.outs: list[list[str]] = []  # base outputs
        for i, op in enumerate(ops):
            deps, ins = set(), []
            for t in op.inputs:
                if not t or graph.tensors[t].is_const:
                    continue
                if t in producer:
                    deps.add(producer[t])
                elif t not in graph.inputs:
                    raise UserInputError(f"op {i} ({op.kind} {op.name!r}) reads {t!r}, which no op writes "
                                         "and which is neither a model input nor a constant")
                b = self.root(t)
                if b not in ins:
                    ins.append(b)
            self.deps.append(deps)
            self.ins.append(ins)
            self.outs.append([t for t in op.outputs if t not in self.alias])
        self.bases: list[str] = []
        for t in graph.inputs:
            if t not in self.bases and not graph.tensors[t].is_const:
                self.bases.append(t)
        for outs in self.outs:
            self.bases.extend(outs)
        self.size = {b: graph.tensors[b].nbytes for b in self.bases}
        self.producer = {b: producer[b] for b in self.bases if b in producer}
        self.model_inputs = {t for t in graph.inputs if not graph.tensors[t].is_const}
        self.model_outputs = {self.root(t) for t in graph.outputs if not graph.tensors[t].is_const}
        self.consumers: dict[str, list[int]] = {b: [] for b in self.bases}
        for i, ins in enumerate(self.ins):
            for b in ins:
                self.consumers[b].append(i)
        self.topo = self._stable_topo()

    def root(self, t: str) -> str:
        return self.alias.get(t, t)

    def _stable_topo(self) -> list[int]:
        n = len(self.graph.ops)
        indeg = [len(d) for d in self.deps]
        users: list[list[int]] = [[] for _ in range(n)]
        for k, d in enumerate(self.deps):
            for j in d:
                users[j].append(k)
        import heapq
        ready = [k for k in range(n) if indeg[k] == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            k = heapq.heappop(ready)
            order.append(k)
            for u in users[k]:
                indeg[u] -= 1
                if indeg[u] == 0:
                    heapq.heappush(ready, u)
        if len(order) != n:
            stuck = sorted(set(range(n)) - set(order))
            raise UserInputError(f"the graph has a cycle (ops {stuck[:8]} can never run)")
        return order

    def lifetimes(self, order: list[int]) -> dict[str, tuple[int, int]]:
        pos = {k: p for p, k in enumerate(order)}
        end = max(len(order) - 1, 0)
        life = {}
        for b in self.bases:
            first = pos[self.producer[b]] if b in self.producer else 0
            last = max([pos[c] for c in self.consumers[b]], default=first)
            if b in self.model_outputs:
                last = end
            life[b] = (first, max(first, last))
        return life

    def alias_lifetimes(self, order: list[int]) -> dict[str, tuple[int, int]]:
        pos = {k: p for p, k in enumerate(order)}
        producer = self.graph.producers()
        cons = self.graph.consumers()
        end = max(len(order) - 1, 0)
        out = {}
        for a in self.alias:
            first = pos[producer[a]]
            last = max([pos[c] for c in cons.get(a, [])], default=first)
            if a in self.graph.outputs:
                last = end
            out[a] = (first, last)
        return out


def _same_elements(graph: ir.Graph, a: str, b: str) -> bool:
    ta, tb = graph.tensors[a], graph.tensors[b]
    return prod(ta.shape) == prod(tb.shape) and ta.nbytes == tb.nbytes


def _tflite_pad(size_in: int, size_out: int, stride: int, k: int, dil: int) -> int:
    eff = (k - 1) * dil + 1
    return max((size_out - 1) * stride + eff - size_in, 0) // 2


def overlap_distance(op: ir.Op, graph: ir.Graph, pixels_in_flight: int = PIXELS_IN_FLIGHT) -> int | None:
    """Smallest D >= 0 such that ``op`` may write its output at (input offset - D) while reading
    its first input, under the raster-order kernel contract (see module docstring). None when the
    op is not a 4-D NHWC window op whose geometry is known."""
    if op.kind not in OVERLAP_OPS or not op.inputs or not op.outputs or not op.inputs[0]:
        return None
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if len(x.shape) != 4 or len(y.shape) != 4 or x.shape[0] != y.shape[0]:
        return None
    o = op.options
    if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        if len(op.inputs) < 2 or not op.inputs[1] or len(graph.tensors[op.inputs[1]].shape) != 4:
            return None
        kh, kw = graph.tensors[op.inputs[1]].shape[1:3]
    else:
        if "filter_h" not in o or "filter_w" not in o:
            return None
        kh, kw = int(o["filter_h"]), int(o["filter_w"])
    n, hi, wi, ci = x.shape
    _, ho, wo, co = y.shape
    if min(hi, wi, ci, ho, wo, co) <= 0:
        return None
    sh, sw = int(o.get("stride_h", 1)), int(o.get("stride_w", 1))
    dh, dw = int(o.get("dilation_h", 1)), int(o.get("dilation_w", 1))
    same = o.get("padding", "VALID") == "SAME"
    pt = _tflite_pad(hi, ho, sh, kh, dh) if same else 0
    pl = _tflite_pad(wi, wo, sw, kw, dw) if same else 0
    bin_, bout = ir.DTYPE_BYTES[x.dtype], ir.DTYPE_BYTES[y.dtype]
    import numpy as np  # vectorised: an activation of up to model_checks.MAX_ACTIVATION_BYTES in well under a second
    rows = np.clip(np.arange(ho, dtype=np.int64) * sh - pt, 0, hi - 1)
    cols = np.clip(np.arange(wo, dtype=np.int64) * sw - pl, 0, wi - 1)
    # first input byte read by output pixel q, then suffix minimum over q' >= q
    starts = (((np.arange(n, dtype=np.int64)[:, None, None] * hi + rows[None, :, None]) * wi
               + cols[None, None, :]) * ci * bin_).ravel()
    starts = np.minimum.accumulate(starts[::-1])[::-1]
    q = np.arange(starts.size, dtype=np.int64)
    px = co * bout
    return int(((q + 1) * px - starts[np.maximum(0, q - pixels_in_flight + 1)]).max())


# ----------------------------------------------------------------------------------------------
# candidate in-place / overlap pairs

@dataclass(frozen=True)
class _Edge:
    """Op ``op`` may place its output ``out`` so that input ``inps[i]`` sits at
    offset(out) + rels[i]: in-place (rel 0), overlap (rel = D: output D bytes below the input),
    concat (rel = the input's slice of the output)."""
    op: int
    inps: tuple[str, ...]
    out: str
    rels: tuple[int, ...]
    kind: str         # "inplace" | "overlap" | "concat"

    @property
    def inp(self) -> str:
        return self.inps[0]


def _concat_edge(view: _View, k: int, op: ir.Op, alignment: int) -> _Edge | None:
    """CONCATENATION whose inputs are contiguous slices of the output (every dimension before
    the concat axis is 1), each aligned, distinct and produced by an op."""
    g = view.graph
    out = g.tensors[op.outputs[0]]
    rank = len(out.shape)
    if rank == 0 or any(not t or g.tensors[t].is_const for t in op.inputs) or len(op.inputs) < 2:
        return None
    axis = int(op.options.get("axis", rank - 1))
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank or prod(out.shape[:axis]) != 1:
        return None
    roots = [view.root(t) for t in op.inputs]
    if len(set(roots)) != len(roots) or any(r in view.model_inputs or r in view.model_outputs for r in roots):
        return None
    rels, at = [], 0
    for t in op.inputs:
        x = g.tensors[t]
        if len(x.shape) != rank or x.dtype != out.dtype or prod(x.shape[:axis]) != 1 or at % alignment:
            return None
        rels.append(at)
        at += x.nbytes
    if at != out.nbytes:
        return None
    return _Edge(k, tuple(roots), op.outputs[0], tuple(rels), "concat")


def _static_edges(view: _View, inplace: bool, overlap: bool, concat: bool = False,
                  alignment: int = 16) -> dict[int, list[_Edge]]:
    """Per op, the pairs it could use if the input dies there (checked per order later)."""
    g = view.graph
    edges: dict[int, list[_Edge]] = {}
    for k, op in enumerate(g.ops):
        if len(view.outs[k]) != 1:
            continue
        out = view.outs[k][0]
        cands = []
        if inplace and op.kind in INPLACE_OPS:
            for t in op.inputs:
                if t and not g.tensors[t].is_const and _same_elements(g, t, out):
                    b = view.root(t)
                    if all(e.inp != b for e in cands):
                        cands.append(_Edge(k, (b,), out, (0,), "inplace"))
        elif overlap and op.kind in OVERLAP_OPS and op.inputs and op.inputs[0] \
                and not g.tensors[op.inputs[0]].is_const:
            d = overlap_distance(op, g)
            if d is not None and d < view.size[view.root(op.inputs[0])] + view.size[out]:
                cands.append(_Edge(k, (view.root(op.inputs[0]),), out, (d,), "overlap"))
        elif concat and op.kind == "CONCATENATION" and out == op.outputs[0]:
            e = _concat_edge(view, k, op, alignment)
            cands += [e] if e else []
        cands = [e for e in cands if not any(i in view.model_inputs or i in view.model_outputs for i in e.inps)]
        if cands:
            edges[k] = cands
    return edges


def _saving(view: _View, e: _Edge) -> int:
    """Bytes the pair saves at its op's step over placing input(s) and output apart."""
    if e.kind == "concat":
        return sum(view.size[i] for i in e.inps)
    si, so = view.size[e.inp], view.size[e.out]
    return si + so - max(so, e.rels[0] + si)


def _edges_for_order(view: _View, static: dict[int, list[_Edge]], life, pos) -> dict[int, _Edge]:
    chosen = {}
    for k, cands in static.items():
        ok = [e for e in cands if all(life[i][1] == pos[k] for i in e.inps)]
        if ok:
            chosen[k] = max(ok, key=lambda e: _saving(view, e))
    # a window op writing over its dying input (overlap) whose output is also a slice of an in-place
    # concatenation would put that input inside the concatenation, over a sibling slice: keep the concat
    concat_slices = {i for e in chosen.values() if e.kind == "concat" for i in e.inps}
    return {k: e for k, e in chosen.items() if not (e.kind == "overlap" and e.out in concat_slices)}


# ----------------------------------------------------------------------------------------------
# operator order

def _bounds(view: _View, life, pos, scratch, edges: dict[int, _Edge]) -> tuple[int, int]:
    """(peak live bytes, two largest) over the steps, each pair in ``edges`` counted as its union."""
    n = len(pos)
    live: list[list[int]] = [[] for _ in range(max(n, 1))]
    merged = {}
    for k, e in edges.items():
        merged[(pos[k], e.out)] = e
        for i in e.inps:
            merged[(pos[k], i)] = e
    for b, (t0, t1) in life.items():
        for p in range(t0, t1 + 1):
            if (p, b) in merged:
                e = merged[(p, b)]
                if b == e.out:
                    live[p].append(view.size[e.out] + sum(view.size[i] for i in e.inps) - _saving(view, e))
            else:
                live[p].append(view.size[b])
    for k, s in scratch.items():
        if s > 0:
            live[pos[k]].append(s)
    peak = max((sum(x) for x in live), default=0)
    two = max((sum(sorted(x)[-2:]) for x in live), default=0)
    return peak, two


class _Sim:
    """Incremental live-byte bookkeeping over sets of executed ops (bitmasks)."""

    def __init__(self, view: _View, scratch, static):
        self.view, self.scratch = view, scratch
        n = len(view.graph.ops)
        self.n = n
        self.depmask = [sum(1 << d for d in view.deps[k]) for k in range(n)]
        self.consmask = {b: sum(1 << c for c in view.consumers[b]) for b in view.bases}
        self.static = static
        self.live0 = sum(view.size[b] for b in view.model_inputs
                         if view.consumers[b] or b in view.model_outputs)

    def step(self, mask: int, live: int, k: int):
        """Execute op k after ``mask``: (bytes live during k, bytes live after k)."""
        v = self.view
        done = mask | (1 << k)
        during = live + sum(v.size[o] for o in v.outs[k]) + self.scratch.get(k, 0)
        best = 0
        for e in self.static.get(k, ()):
            if all(self.consmask[i] & ~done == 0 for i in e.inps):
                best = max(best, _saving(v, e))
        during -= best
        after = live
        for o in v.outs[k]:
            if v.consumers[o] or o in v.model_outputs:
                after += v.size[o]
        for b in v.ins[k]:
            if self.consmask[b] & ~done == 0 and b not in v.model_outputs:
                after -= v.size[b]
        return during, after


def _search_order(view: _View, scratch, static) -> list[int]:
    sim = _Sim(view, scratch, static)
    n = sim.n
    if n == 0:
        return []
    full = (1 << n) - 1
    # exact DP over executed-op sets: state -> (peak so far, live after, parent, last op)
    layer = {0: (0, sim.live0)}
    back: dict[int, tuple[int, int]] = {}
    explored = 0
    for _ in range(n):
        nxt: dict[int, tuple[int, int]] = {}
        for mask, (peak, live) in layer.items():
            for k in range(n):
                if mask >> k & 1 or sim.depmask[k] & ~mask:
                    continue
                during, after = sim.step(mask, live, k)
                m2, p2 = mask | (1 << k), max(peak, during)
                cur = nxt.get(m2)
                if cur is None or (p2, after) < cur:
                    nxt[m2] = (p2, after)
                    back[m2] = (mask, k)
        explored += len(nxt)
        if explored > min(MAX_DP_STATES, DP_WORK // n):
            return _greedy_order(sim)
        layer = nxt
    order, m = [], full
    while m:
        m, k = back[m]
        order.append(k)
    return order[::-1]


def _greedy_order(sim: _Sim) -> list[int]:
    mask, live, order = 0, sim.live0, []
    for _ in range(sim.n):
        best = None
        for k in range(sim.n):
            if mask >> k & 1 or sim.depmask[k] & ~mask:
                continue
            during, after = sim.step(mask, live, k)
            key = (during, after - live, k)
            if best is None or key < best[0]:
                best = (key, k, after)
        _, k, live = best
        mask |= 1 << k
        order.append(k)
    return order


# ----------------------------------------------------------------------------------------------
# offset assignment

def _align(x: int, a: int) -> int:
    return -(-x // a) * a


def _groups(view: _View, life, edges: dict[int, _Edge], scratch, pos, alignment):
    """Rigid groups of tensors joined by chosen pairs, with relative offsets. Every tensor is
    absorbed by at most one newer tensor (the output of the op where it dies), so the pairs form
    a forest; each tree is placed as one unit."""
    down: dict[str, list[tuple[str, int]]] = {}
    absorbed = set()
    for e in edges.values():
        for i, r in zip(e.inps, e.rels):
            down.setdefault(e.out, []).append((i, _align(r, alignment)))
            absorbed.add(i)
    groups = []
    for b in view.bases:
        if b in absorbed:
            continue
        members, stack = [], [(b, 0)]
        while stack:
            cur, rel = stack.pop()
            if view.size[cur]:
                t0, t1 = life[cur]
                members.append((cur, rel, t0, t1, view.size[cur]))
            stack.extend((c, rel + r) for c, r in down.get(cur, ()))
        if members:
            lo = min(m[1] for m in members)
            groups.append([(m[0], m[1] - lo, m[2], m[3], m[4]) for m in members])
    for k, s in scratch.items():
        if s > 0:
            groups.append([(f"scratch:{k}", 0, pos[k], pos[k], s)])
    return groups


_ORDERINGS = {
    "size": lambda g: (-max(m[1] + m[4] for m in g), min(m[2] for m in g), g[0][0]),
    "area": lambda g: (-sum(m[4] * (m[3] - m[2] + 1) for m in g), g[0][0]),
    "first-use": lambda g: (min(m[2] for m in g), -max(m[1] + m[4] for m in g), g[0][0]),
    "lifetime": lambda g: (min(m[2] for m in g) - max(m[3] for m in g), -max(m[1] + m[4] for m in g), g[0][0]),
}


def _place(groups, key, alignment):
    """Greedy: each group (largest first, per ``key``) goes to the lowest base offset at which none
    of its members collides with an already placed allocation live at an overlapping step."""
    placed = []  # (t0, t1, lo, hi)
    offsets = {}
    arena = 0
    for g in sorted(groups, key=key):
        # base values b with lo < b + r + sz and b + r < hi collide: forbidden [lo - r - sz + 1, hi - r)
        forbidden = []
        for (name, r, t0, t1, size) in g:
            sz = _align(size, alignment)
            forbidden += [(lo - r - sz + 1, hi - r) for (p0, p1, lo, hi) in placed
                          if p0 <= t1 and t0 <= p1 and hi > r]
        base = 0
        for a, b in sorted(forbidden):
            if a > base:
                break
            base = max(base, b)
        for (name, r, t0, t1, size) in g:
            offsets[name] = base + r
            placed.append((t0, t1, base + r, base + r + _align(size, alignment)))
            arena = max(arena, base + r + size)
    return arena, offsets


def _bounded_edges(view: _View, edges: dict[int, _Edge], life, alignment) -> dict[int, _Edge]:
    """Drop overlap pairs that make a chain drift further than its largest member."""
    keep = {}
    drift: dict[str, int] = {}
    largest: dict[str, int] = {}
    for k in sorted(edges, key=lambda k: life[edges[k].out][0]):
        e = edges[k]
        if e.kind == "concat":
            keep[k] = e
            continue
        d0, l0 = drift.get(e.inp, 0), largest.get(e.inp, view.size[e.inp])
        d1, l1 = d0 + _align(e.rels[0], alignment), max(l0, view.size[e.out])
        if e.kind == "inplace" or d1 <= l1:
            keep[k] = e
            drift[e.out], largest[e.out] = d1, l1
    return keep


# ----------------------------------------------------------------------------------------------
# public API

def _variants(view: _View, static, order, scratch, alignment):
    """The pair sets worth trying for ``order``, each as (bound, index, name, pairs, order, pos, life)."""
    pos = {k: p for p, k in enumerate(order)}
    life = view.lifetimes(order)
    edges = _edges_for_order(view, static, life, pos)
    kinds = {e.kind for e in edges.values()}
    variants = {"all": edges}
    if "overlap" in kinds:
        variants["bounded"] = _bounded_edges(view, edges, life, alignment)
        variants["no-overlap"] = {k: e for k, e in edges.items() if e.kind != "overlap"}
    if "concat" in kinds:
        variants["no-concat"] = {k: e for k, e in edges.items() if e.kind != "concat"}
    if {"overlap", "concat"} <= kinds:
        variants["inplace-only"] = {k: e for k, e in edges.items() if e.kind == "inplace"}
    if edges:
        variants["none"] = {}
    out, seen = [], []
    for vi, (vname, chosen) in enumerate(variants.items()):
        if chosen not in seen:
            seen.append(chosen)
            out.append((_bounds(view, life, pos, scratch, chosen)[0], vi, vname, chosen, order, pos, life))
    return out


def _try(view, best, bound, vname, chosen, order, pos, life, scratch, alignment):
    """Place one candidate with each ordering; return the better of it and ``best``
    (arena, offsets, order, pairs, lifetimes, strategy, bound)."""
    groups = _groups(view, life, chosen, scratch, pos, alignment)
    for oname, key in _ORDERINGS.items():
        arena, offs = _place(groups, key, alignment)
        if best is None or arena < best[0]:
            best = (arena, offs, order, chosen, life, f"{vname}/{oname}", bound)
        if best[0] <= bound:
            break
    return best


def _moves(view: _View, order):
    """Topological orders that differ from ``order`` by moving one op earlier."""
    pos = {k: p for p, k in enumerate(order)}
    for i, k in enumerate(order):
        first = max((pos[d] for d in view.deps[k]), default=-1) + 1
        for j in range(i - 1, first - 1, -1):
            yield order[:j] + [k] + order[j:i] + order[i + 1:]



def plan_memory(graph: ir.Graph, scratch: dict[int, int] | None = None, *, inplace: bool = True,
                reorder: bool = True, alignment: int = 16, overlap: bool = False,
                concat: bool = False) -> MemoryPlan:
    """Plan the arena for ``graph`` (see _plan_memory). The plan depends only on the graph's
    structure, never on its tensor names or the order of its tensor table: the pruning stage builds
    the same graph from PyTorch with other names than the converter's, and its estimate must equal
    the code generator's plan byte for byte (ties in the placement heuristics used to break by name)."""
    names = {t for op in graph.ops for t in (*op.inputs, *op.outputs) if t} | set(graph.inputs) | set(graph.outputs)
    if not names <= set(graph.tensors):
        return _plan_memory(graph, scratch)  # raises the error naming the unknown tensor
    canon, back, perm = _canonical(graph, reorder)
    inv = {k: i for i, k in enumerate(perm)}
    cscratch = {inv[int(k)]: v for k, v in (scratch or {}).items() if 0 <= int(k) < len(graph.ops)}
    if scratch and len(cscratch) != len(scratch):
        return _plan_memory(graph, scratch)  # raises the error naming the bad scratch entry
    plan = _plan_memory(canon, cscratch, inplace=inplace, reorder=reorder, alignment=alignment,
                        overlap=overlap, concat=concat)
    plan = _renamed(plan, back, perm)
    plan.validate(graph)
    return plan


def _canonical_op_order(graph: ir.Graph) -> list[int]:
    """A topological order of graph.ops that depends only on structure: Kahn's algorithm taking,
    among the ready ops, the one whose inputs were produced earliest, then by kind, shapes and
    options (converters and the PyTorch tracer list independent branches in different orders)."""
    producer = {t: k for k, op in enumerate(graph.ops) for t in op.outputs}
    pos: dict[str, int] = {t: -1 - i for i, t in enumerate(graph.inputs)}
    deps = {k: {producer[t] for t in op.inputs if t and t in producer} for k, op in enumerate(graph.ops)}
    done: list[int] = []
    left = set(range(len(graph.ops)))

    def key(k):
        op = graph.ops[k]
        t = graph.tensors
        return (sorted(pos.get(i, len(graph.ops)) for i in op.inputs if i and not t[i].is_const), op.kind,
                [t[o].shape for o in op.outputs], [t[i].shape for i in op.inputs if i and t[i].is_const],
                repr(sorted(op.options.items())))
    while left:
        ready = [k for k in left if deps[k] <= set(done)]
        if not ready:  # a cycle: keep the given order, _plan_memory reports it
            return list(range(len(graph.ops)))
        k = min(ready, key=lambda j: (key(j), j))
        for o in graph.ops[k].outputs:
            pos[o] = len(done)
        done.append(k)
        left.discard(k)
    return done


def _canonical(graph: ir.Graph, reorder: bool = True) -> tuple[ir.Graph, dict[str, str], list[int]]:
    """The graph with ops in canonical order (only when the planner may reorder: otherwise the given
    order is the schedule) and tensors named by first use (model inputs, then op by op)
    -> (graph, tensor back-map, perm) where canonical op i is original op perm[i]."""
    perm = _canonical_op_order(graph) if reorder else list(range(len(graph.ops)))
    order: list[str] = []
    seen: set[str] = set()
    for n in [*graph.inputs, *(t for k in perm for t in (*graph.ops[k].inputs, *graph.ops[k].outputs)),
              *graph.outputs, *graph.tensors]:
        if n and n not in seen:
            seen.add(n)
            order.append(n)
    fwd = {n: f"t{i:06d}" for i, n in enumerate(order)}
    tensors = {fwd[n]: dataclasses.replace(graph.tensors[n], name=fwd[n]) for n in order}
    ops = [ir.Op(kind=op.kind, inputs=[fwd[t] if t else "" for t in op.inputs], outputs=[fwd[t] for t in op.outputs],
                 options=dict(op.options), name=op.name) for op in (graph.ops[k] for k in perm)]
    canon = ir.Graph(tensors=tensors, ops=ops, inputs=[fwd[t] for t in graph.inputs],
                     outputs=[fwd[t] for t in graph.outputs], name=graph.name)
    return canon, {v: k for k, v in fwd.items()}, perm


def _renamed(plan: MemoryPlan, back: dict[str, str], perm: list[int]) -> MemoryPlan:
    def r(n):
        return back.get(n, n)
    return dataclasses.replace(
        plan, offsets={r(k): v for k, v in plan.offsets.items()},
        scratch_offsets={perm[k]: v for k, v in plan.scratch_offsets.items()},
        order=[perm[k] for k in plan.order],
        aliases={r(k): r(v) for k, v in plan.aliases.items()},
        inplace={perm[k]: r(v) for k, v in plan.inplace.items()},
        lifetimes={r(k): v for k, v in plan.lifetimes.items()},
        overlaps={perm[k]: (r(v[0]), v[1]) for k, v in plan.overlaps.items()},
        concat_inplace={perm[k]: [r(x) for x in v] for k, v in plan.concat_inplace.items()},
        scratch={perm[k]: v for k, v in plan.scratch.items()})


def _plan_memory(graph: ir.Graph, scratch: dict[int, int] | None = None, *, inplace: bool = True,
                 reorder: bool = True, alignment: int = 16, overlap: bool = False,
                 concat: bool = False) -> MemoryPlan:
    """Plan the arena for ``graph``. ``scratch`` maps op index -> scratch bytes (None: no scratch;
    codegen.estimate fills it from codegen.scratch). ``overlap`` lets window ops write over their
    dying input (only for kernels that honour the raster-order contract; see docs). ``concat``
    places the inputs of a CONCATENATION whose slices are contiguous directly in its output
    (``concat_inplace``): the generated code must then skip (or not memcpy onto itself) the copy."""
    if alignment <= 0 or alignment & (alignment - 1):
        raise UserInputError(f"alignment must be a power of two, got {alignment}")
    scratch = {int(k): int(v) for k, v in (scratch or {}).items() if v}
    for k, v in scratch.items():
        if not 0 <= k < len(graph.ops) or v < 0:
            raise UserInputError(f"scratch entry {k}: {v} does not name an op of the graph / a size >= 0")
    view = _View(graph)
    static = _static_edges(view, inplace, overlap, concat, alignment)
    orders = [view.topo]
    if reorder and len(graph.ops) > 1:
        o = _search_order(view, scratch, static)
        if o != view.topo:
            orders.append(o)
    # every (order, pair set) candidate with its lower bound; place the most promising first and
    # skip candidates whose bound cannot beat the best arena found (arena >= bound always)
    cands = []
    for oi, order in enumerate(orders):
        cands += [(c[0], oi, *c[1:]) for c in _variants(view, static, order, scratch, alignment)]
    cands.sort(key=lambda c: c[:3])
    best = None
    for bound, _, _, vname, chosen, order, pos, life in cands:
        if best is None or bound < best[0]:
            best = _try(view, best, bound, vname, chosen, order, pos, life, scratch, alignment)
    if reorder:
        # local search: move one op earlier in the best order while the arena is above its bound
        trials, tried = 0, 0
        for order in _moves(view, best[2]):
            if best[0] <= best[6] or trials >= ORDER_TRIALS or tried >= 8 * ORDER_TRIALS:
                break
            tried += 1
            for bound, _, vname, chosen, o, pos, life in _variants(view, static, order, scratch, alignment):
                if bound < best[0]:
                    trials += 1
                    best = _try(view, best, bound, vname, chosen, o, pos, life, scratch, alignment)
    arena, offs, order, chosen, life, strategy, _ = best
    pos = {k: p for p, k in enumerate(order)}
    peak, two = _bounds(view, life, pos, scratch, _edges_for_order(view, static, life, pos))
    offsets = {b: offs.get(b, 0) for b in view.bases}
    for a, r in view.alias.items():
        offsets[a] = offsets[r]
    lifetimes = dict(life)
    lifetimes.update(view.alias_lifetimes(order))
    plan = MemoryPlan(
        arena_bytes=arena, offsets=offsets,
        scratch_offsets={k: offs[f"scratch:{k}"] for k in scratch},
        order=list(order), aliases=dict(view.alias),
        inplace={k: e.inp for k, e in chosen.items() if e.kind == "inplace"},
        lifetimes=lifetimes, peak_lower_bound=peak, two_largest_bound=two,
        overlaps={k: (e.inp, e.rels[0]) for k, e in chosen.items() if e.kind == "overlap"},
        concat_inplace={k: list(e.inps) for k, e in chosen.items() if e.kind == "concat"},
        scratch=dict(scratch), alignment=alignment, strategy=strategy)
    plan.validate(graph)  # cheap, and a planner bug must never reach generated code
    return plan
