"""One training step as a function of its inputs, run eagerly or replayed from a CUDA graph.

`TrainStep(loss_fn, optimizer)` is called as `step(*inputs)`: zero the gradients,
`loss_fn(*inputs).backward()`, an optional `before_step()` (e.g. SalUn's gradient
mask), `optimizer.step()`; it returns the loss (detached, float32). Eagerly that is
the loop every method used to write. With a graph backend (CUDA), the whole step --
forward, backward, mask and fused SGD -- is captured once per input signature
(shapes, dtypes, strides) and then replayed: the inputs are copied into static
buffers, each parameter group's learning rate is a device tensor the fused kernel
reads (refilled from the group's float `lr` before a replay, so schedulers keep
working unchanged), and the launch overhead of ~200 kernels becomes one.

What `loss_fn` must be: a function of its inputs and the model alone -- tensors and
numbers in (numbers become 0-d device tensors, so a weight such as l1-sparse's
gamma_t can change between replays), a scalar loss out; no host synchronisation
(`.item()`, data-dependent shapes) and no random draws (draw them outside, e.g.
random labels, and pass them in). What is not captured runs eagerly and is recorded:
the first `warmup` calls of each signature (on a side stream, as CUDA graphs need),
signatures beyond `max_graphs` (e.g. rare partial batches), and every step after a
capture failed (the reason is kept in `stats.fallback`).

FLOP accounting: the counter's hooks run while a step is captured (Python runs once)
but never on replay, so the counts one captured step adds are measured during the
capture, taken back (a capture computes nothing), and added again on every replay.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Protocol

import torch

from bench.flops import SampleCounter, SampleCounts

CAPTURE_ENV = "UNLEARN_BENCH_CUDA_GRAPHS"  # "0" turns CUDA-graph capture off (eager steps everywhere)
log = logging.getLogger(__name__)

LossFn = Callable[..., torch.Tensor]


def capture_enabled_by_env() -> bool:
    return os.environ.get(CAPTURE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class GraphBackend(Protocol):
    """How steps are captured and replayed (CUDA graphs; tests use a CPU stand-in)."""

    def warmup(self) -> contextlib.AbstractContextManager: ...

    def capture(self, body: Callable[[], torch.Tensor]) -> tuple[Callable[[], None], torch.Tensor]:
        """Capture `body`; return (replay, the output tensor every replay rewrites)."""
        ...


class CudaGraphs:
    """Captures with `torch.cuda.graph` (all graphs of one TrainStep share a memory pool:
    they replay one after another on one stream and pass nothing to each other through it);
    warm-up runs on a side stream, as CUDA graph capture requires."""

    def __init__(self, device: torch.device):
        self.device = device
        self._side = torch.cuda.Stream(device)
        self._pool = None

    @contextlib.contextmanager
    def warmup(self):
        current = torch.cuda.current_stream(self.device)
        self._side.wait_stream(current)
        with torch.cuda.stream(self._side):
            yield
        current.wait_stream(self._side)

    def capture(self, body: Callable[[], torch.Tensor]) -> tuple[Callable[[], None], torch.Tensor]:
        graph = torch.cuda.CUDAGraph()
        # thread_local: CUDA calls of other threads (an executor's, a metrics thread's) do not void the capture
        with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
            out = body()
        if self._pool is None:
            self._pool = graph.pool()
        return graph.replay, out


@dataclass
class StepStats:
    """Which path the steps took; goes into the record."""

    path: str = "eager"  # "cuda_graph" once a step was replayed from a graph
    replayed_steps: int = 0
    eager_steps: int = 0
    graphs: int = 0
    fallback: str | None = None  # why capture was given up, if it was

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def merge(stats: list["StepStats"]) -> dict[str, Any] | None:
        """One summary for several TrainSteps of a run (None if there were none)."""
        if not stats:
            return None
        fallbacks = [s.fallback for s in stats if s.fallback]
        return {
            "path": "cuda_graph" if any(s.replayed_steps for s in stats) else "eager",
            "replayed_steps": sum(s.replayed_steps for s in stats),
            "eager_steps": sum(s.eager_steps for s in stats),
            "graphs": sum(s.graphs for s in stats),
            "fallback": fallbacks[0] if fallbacks else None,
        }


@dataclass
class _Captured:
    replay: Callable[[], None]
    inputs: list[torch.Tensor]  # static input buffers
    loss: torch.Tensor  # static output, rewritten by each replay
    counts: SampleCounts  # samples counted by one step
    grads: list[torch.Tensor | None] = field(default_factory=list)  # kept alive: the graph writes them


def _signature(inputs: tuple[torch.Tensor, ...]) -> tuple:
    return tuple((tuple(t.shape), t.dtype, t.stride()) for t in inputs)


class TrainStep:
    """`step(*inputs)` -> loss: one optimiser step on `loss_fn(*inputs)`, eager or captured (see module doc)."""

    def __init__(self, loss_fn: LossFn, optimizer: torch.optim.Optimizer, *,
                 before_step: Callable[[], None] | None = None, counter: SampleCounter | None = None,
                 graphs: GraphBackend | None = None, warmup: int = 3, max_graphs: int = 4,
                 before_replay: Callable[[], None] | None = None):
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.before_step = before_step
        self.counter = counter
        self.graphs = graphs
        self.warmup = warmup
        self.max_graphs = max_graphs
        self.before_replay = before_replay  # what a forward hook would have run (a replay runs no hooks)
        self.stats = StepStats()
        self.device = optimizer.param_groups[0]["params"][0].device
        self._seen: dict[tuple, int] = {}
        self._captured: dict[tuple, _Captured] = {}
        self._scalars: dict[int, torch.Tensor] = {}  # input position -> 0-d tensor holding a number input
        self._lrs: list[torch.Tensor] | None = None  # one device tensor per param group (graph path)
        self._lr_values: list[float] = []

    # ------------------------------------------------------------------ the step

    def __call__(self, *inputs: Any) -> torch.Tensor:
        tensors = self._as_tensors(inputs)
        if self.graphs is None or self.stats.fallback is not None:
            return self._eager(tensors)
        sig = _signature(tensors)
        captured = self._captured.get(sig)
        if captured is not None:
            return self._replay(captured, tensors)
        if len(self._captured) >= self.max_graphs:
            return self._eager(tensors)
        seen = self._seen[sig] = self._seen.get(sig, 0) + 1
        if seen <= self.warmup:
            with self.graphs.warmup():
                return self._eager(tensors)
        try:
            captured = self._capture(sig, tensors)
        except Exception as exc:  # any capture problem: this and every later step run eagerly
            self.stats.fallback = f"{type(exc).__name__}: {exc}".splitlines()[0]
            log.warning("CUDA graph capture failed, training eagerly: %s", self.stats.fallback)
            self.optimizer.zero_grad(set_to_none=True)
            return self._eager(tensors)
        return self._replay(captured, tensors)

    def _body(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(*inputs)
        loss.backward()
        if self.before_step is not None:
            self.before_step()
        self.optimizer.step()
        return loss.detach().float()

    def _eager(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        self.stats.eager_steps += 1
        return self._body(inputs)

    # ------------------------------------------------------------------ capture and replay

    def _as_tensors(self, inputs: tuple[Any, ...]) -> list[torch.Tensor]:
        """Number inputs become 0-d float32 tensors on the device (one fill kernel, no copy
        from the host), on both paths, so the loss code is the same either way."""
        out = []
        for i, value in enumerate(inputs):
            if isinstance(value, torch.Tensor):
                out.append(value)
                continue
            if not isinstance(value, (int, float)):
                raise TypeError(f"step input {i}: tensors and numbers only, got {type(value).__name__}")
            holder = self._scalars.get(i)
            if holder is None:
                holder = self._scalars[i] = torch.zeros((), dtype=torch.float32, device=self.device)
            out.append(holder.fill_(float(value)))
        return out

    @contextlib.contextmanager
    def _tensor_lrs(self):
        """Each group's lr as its device tensor while the step is captured (or, on the CPU
        stand-in, re-run), so replays read the value `_sync_lrs` last wrote."""
        groups = self.optimizer.param_groups
        if self._lrs is None:
            self._lrs = [torch.tensor(float(g["lr"]), dtype=torch.float32, device=self.device) for g in groups]
            self._lr_values = [float(g["lr"]) for g in groups]
        floats = [g["lr"] for g in groups]
        for g, t in zip(groups, self._lrs):
            g["lr"] = t
        try:
            yield
        finally:
            for g, value in zip(groups, floats):
                g["lr"] = value

    def _sync_lrs(self) -> None:
        for i, g in enumerate(self.optimizer.param_groups):
            value = float(g["lr"])
            if value != self._lr_values[i]:
                self._lrs[i].fill_(value)
                self._lr_values[i] = value

    def _capture(self, sig: tuple, inputs: list[torch.Tensor]) -> _Captured:
        static = [t.clone(memory_format=torch.preserve_format) for t in inputs]
        before = copy.copy(self.counter.counts) if self.counter is not None else None

        def body() -> torch.Tensor:
            with self._tensor_lrs():
                return self._body(static)

        try:
            replay, loss = self.graphs.capture(body)
        finally:
            counted = None
            if self.counter is not None:
                counted = self.counter.counts - before
                self.counter.counts = before  # the capture recorded the step; it did not run it
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        captured = _Captured(replay, static, loss, counted or SampleCounts(), [p.grad for p in params])
        self._captured[sig] = captured
        self.stats.graphs += 1
        return captured

    def _replay(self, captured: _Captured, inputs: list[torch.Tensor]) -> torch.Tensor:
        if self.before_replay is not None:
            self.before_replay()
        for buffer, value in zip(captured.inputs, inputs):
            if buffer is not value:
                buffer.copy_(value)
        self._sync_lrs()
        captured.replay()
        if self.counter is not None:
            self.counter.counts = self.counter.counts + captured.counts
        self.stats.replayed_steps += 1
        self.stats.path = "cuda_graph"
        return captured.loss
