"""Activation memory of one execution order: naive sum, liveness lower bound, greedy plan.

Model of execution: steps run in the given (topological) order. A step's outputs are
allocated while its inputs are still held; an input is released right after its last
reader. Graph inputs are held from the start until their last reader; graph outputs are
held to the end; an output nobody reads is released right after the step that made it.

In-place rule (shared by the lower bound and the plan, so the bound stays a bound): an
output may overwrite an input the op allows (see op_costs.INPLACE_*) when that input has
the same byte size and is released at this very step; the pair then counts once.

Greedy plan, in the style of Torch OptNet's shared buffers: every tensor gets a buffer from
a free pool. Rule for a tensor of n bytes: (1) in-place as above; else (2) best fit, the
smallest free buffer of >= n bytes (ties: lowest index); else (3) if any buffer is free,
the largest one is grown to n bytes; else (4) a new buffer of n bytes. Buffers go back to
the pool when their tensor is released. Plan total = sum of final buffer sizes.

Graph inputs are ordinary buffers here (after their last use they may be overwritten in
place or reused). Tensors inside If/Loop/Scan bodies are not modelled; outer tensors those
bodies read are kept alive until the control-flow node runs. Workspace (im2col) is not
included; it is reported separately.

Why the invariant holds: at every instant the live tensors occupy distinct buffers at
least their size, so plan >= peak live bytes; each allocation or growth adds at most the
tensor's own size, so plan <= the naive sum of all tensors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Step:
    name: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    inplace_from: tuple[str, ...] = ()  # reads the op would allow an output to overwrite


@dataclass
class MemoryPlan:
    naive_bytes: int
    lower_bound_bytes: int
    plan_bytes: int
    live_after: list[int]  # live bytes just after each step (lower-bound accounting)
    buffers: list[int] = field(default_factory=list)  # final buffer sizes of the plan
    assignment: dict[str, int] = field(default_factory=dict)  # tensor -> buffer index
    inplace: dict[str, str] = field(default_factory=dict)  # output -> input it overwrote


class _Pool:
    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.free: set[int] = set()

    def take(self, need: int) -> int:
        fits = [b for b in self.free if self.sizes[b] >= need]
        if fits:
            b = min(fits, key=lambda i: (self.sizes[i], i))
        elif self.free:
            b = max(self.free, key=lambda i: (self.sizes[i], -i))
            self.sizes[b] = need
        else:
            self.sizes.append(need)
            return len(self.sizes) - 1
        self.free.discard(b)
        return b

    def give(self, b: int) -> None:
        self.free.add(b)


def _pairs(steps: Sequence[Step], sizes: Mapping[str, int], last_read: Mapping[str, int],
           keep: set[str]) -> list[dict[str, str]]:
    """Per step: output -> input it may overwrite under the in-place rule."""
    result = []
    for i, step in enumerate(steps):
        taken: set[str] = set()
        pairs: dict[str, str] = {}
        for out in step.writes:
            if sizes.get(out, 0) <= 0:
                continue
            for cand in step.inplace_from:
                if (cand in sizes and cand not in taken and cand not in keep and cand not in step.writes
                        and last_read.get(cand) == i and sizes[cand] == sizes[out]):
                    pairs[out] = cand
                    taken.add(cand)
                    break
        result.append(pairs)
    return result


def plan_memory(steps: Sequence[Step], sizes: Mapping[str, int], graph_inputs: Iterable[str],
                graph_outputs: Iterable[str]) -> MemoryPlan:
    """`sizes` holds the byte size of every activation tensor (graph inputs and step outputs);
    names read by steps but absent from `sizes` (constants) are ignored."""
    inputs = [n for n in dict.fromkeys(graph_inputs) if n in sizes]
    keep = {n for n in graph_outputs if n in sizes}
    last_read: dict[str, int] = {}
    for i, step in enumerate(steps):
        for r in step.reads:
            if r in sizes:
                last_read[r] = i
    pairs = _pairs(steps, sizes, last_read, keep)

    def released_after(name: str, i: int) -> bool:
        return name not in keep and last_read.get(name, -1) <= i

    produced = [o for s in steps for o in s.writes if o in sizes]
    naive = sum(sizes[n] for n in inputs) + sum(sizes[o] for o in dict.fromkeys(produced) if o not in inputs)

    # Liveness lower bound.
    live = sum(sizes[n] for n in inputs)
    peak = live
    live -= sum(sizes[n] for n in inputs if released_after(n, -1))
    live_after: list[int] = []
    # Greedy plan, walked alongside.
    pool = _Pool()
    owner: dict[str, int] = {}
    for n in inputs:
        if sizes[n] > 0:
            owner[n] = pool.take(sizes[n])
    for n in inputs:
        if n in owner and released_after(n, -1):
            pool.give(owner[n])

    for i, step in enumerate(steps):
        outs = [o for o in dict.fromkeys(step.writes) if o in sizes]
        new = sum(sizes[o] for o in outs if o not in pairs[i])
        peak = max(peak, live + new)
        live += new
        for o in outs:
            if o in pairs[i]:
                owner[o] = owner[pairs[i][o]]
            elif sizes[o] > 0:
                owner[o] = pool.take(sizes[o])
        transferred = set(pairs[i].values())
        for r in dict.fromkeys(step.reads):
            if r in sizes and last_read[r] == i and r not in keep and r not in transferred:
                live -= sizes[r]
                if r in owner:
                    pool.give(owner[r])
        for o in outs:
            if released_after(o, i):
                live -= sizes[o]
                if o in owner:
                    pool.give(owner[o])
        live_after.append(live)

    planned = sum(pool.sizes)
    if not (peak <= planned <= naive):
        raise AssertionError(f"memory invariant broken: lower bound {peak} <= plan {planned} <= naive {naive}")
    inplace = {o: x for p in pairs for o, x in p.items()}
    return MemoryPlan(naive, peak, planned, live_after, list(pool.sizes), owner, inplace)
