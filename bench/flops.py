"""Compute accounting: samples are counted as they run, FLOPs follow from them.

Convention (CoUn's, which reproduces its tables): F = fvcore's count of
multiply-adds for one sample's forward pass, taken in training mode (BatchNorm
counted as it runs in training; ResNet-18 at 32x32 gives 0.5585e9). A forward
pass costs 2F, a backward pass 4F, so a trained sample costs 6F and a
forward-only sample 2F. A stop rule's evaluations (`UnlearnContext.accuracy`) are
part of a method's cost but counted apart (`evaluation`, 2F each), so a table can
show the training and the evaluation share. The extra pass of a double backward (a gradient penalty
differentiated again) is measured for each model with torch's FLOP formulas.

`SampleCounter` hooks the model's backbone: the forward pre-hook counts every
sample that goes forward, and a hook on the backbone's output counts every
sample whose gradient flows back. No host synchronisation is involved: batch
sizes are known on the host.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import warnings
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

from bench.models import Classifier


@dataclass
class SampleCounts:
    forward: int = 0  # samples through a forward pass (2F each)
    backward: int = 0  # samples through a backward pass (4F each)
    second_order: int = 0  # samples whose input gradient was differentiated again (measured k*F each)
    evaluation: int = 0  # samples evaluated (forward only, 2F each) by a method's stop rule

    def __add__(self, other: "SampleCounts") -> "SampleCounts":
        return SampleCounts(self.forward + other.forward, self.backward + other.backward,
                            self.second_order + other.second_order, self.evaluation + other.evaluation)

    def __sub__(self, other: "SampleCounts") -> "SampleCounts":
        return SampleCounts(self.forward - other.forward, self.backward - other.backward,
                            self.second_order - other.second_order, self.evaluation - other.evaluation)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class SampleCounter:
    """Counts samples going forward and backward through the models it is attached to."""

    def __init__(self) -> None:
        self.counts = SampleCounts()
        self._handles: list = []
        self._paused = 0

    def attach(self, model: Classifier) -> None:
        backbone = model.backbone
        self._handles.append(backbone.register_forward_pre_hook(self._on_forward))
        self._handles.append(backbone.register_forward_hook(self._on_output))

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @contextlib.contextmanager
    def paused(self):
        """Passes inside are not counted by the hooks (the caller counts them its own way)."""
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1

    def _on_forward(self, module: nn.Module, args: tuple) -> None:
        if not self._paused:
            self.counts.forward += args[0].shape[0]

    def _on_output(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if output.requires_grad and not self._paused:
            n = output.shape[0]
            output.register_hook(lambda grad: self._on_backward(n))

    def _on_backward(self, n: int) -> None:
        self.counts.backward += n

    def add_second_order(self, n: int) -> None:
        self.counts.second_order += n

    def add_evaluation(self, n: int) -> None:
        """Samples a stop rule evaluated (forward only, counted apart from training)."""
        self.counts.evaluation += n

    def add_forward(self, n: int) -> None:
        """A forward pass the hooks cannot see (e.g. one run under torch.func transforms)."""
        self.counts.forward += n

    def add_backward(self, n: int) -> None:
        """A backward pass the output hook cannot see (the second backward of a penalty
        whose loss does not also flow through the model's output)."""
        self.counts.backward += n


@dataclass(frozen=True)
class CostModel:
    """FLOPs per sample and pass for one model at one input size."""

    forward_macs: float  # F, fvcore, training mode
    second_order_per_sample: float  # extra FLOPs of a double backward, in FLOPs (measured)

    def flops(self, counts: SampleCounts) -> float:
        f = self.forward_macs
        return (2 * f * counts.forward + 4 * f * counts.backward + self.second_order_per_sample * counts.second_order
                + 2 * f * counts.evaluation)

    def pflops(self, counts: SampleCounts) -> float:
        """Everything the procedure ran, its stop rule's evaluations included."""
        return self.flops(counts) / 1e15

    def evaluation_pflops(self, counts: SampleCounts) -> float:
        """The stop rule's share of `pflops`."""
        return 2 * self.forward_macs * counts.evaluation / 1e15


def forward_macs(model: nn.Module, in_channels: int, image_size: int) -> float:
    """fvcore's multiply-add count of one sample's forward pass, in training mode."""
    with warnings.catch_warnings():  # fvcore uses torch.jit, which warns of its own deprecation
        warnings.simplefilter("ignore")
        from fvcore.nn import FlopCountAnalysis

    probe = copy.deepcopy(model).cpu().float().train()
    x = torch.zeros(1, in_channels, image_size, image_size)
    analysis = FlopCountAnalysis(probe, x)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(analysis.total())


class _DispatchFlops(TorchDispatchMode):
    """Adds up torch's FLOP formulas (convolutions, matmuls) for every op dispatched,
    including the ops of backward and double-backward passes."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        from torch.utils._pytree import tree_map
        from torch.utils.flop_counter import flop_registry

        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            shape = lambda t: t.shape if isinstance(t, torch.Tensor) else t  # noqa: E731
            self.total += formula(*tree_map(shape, args), **tree_map(shape, kwargs), out_val=tree_map(shape, out))
        return out


def _dispatch_flops(fn) -> int:
    with _DispatchFlops() as counter:
        fn()
    return counter.total


def second_order_extra_per_sample(model: Classifier, in_channels: int, image_size: int, f_macs: float) -> float:
    """FLOPs a double backward adds per sample beyond one forward and two backward passes.

    Measured on a copy: a gradient-penalty step (forward, input gradient with
    create_graph, backward through both) minus a forward and two plain
    backwards, expressed relative to the forward and scaled to fvcore's F.
    """
    probe = copy.deepcopy(model).cpu().float().train()
    x = torch.randn(2, in_channels, image_size, image_size)

    def forward() -> None:
        probe(x)

    def train_step() -> None:
        probe(x).logsumexp(1).sum().backward()

    def penalty_step() -> None:
        xg = x.clone().requires_grad_(True)
        out = probe(xg)
        (grad,) = torch.autograd.grad(out.sum(), xg, create_graph=True)
        penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
        (out.logsumexp(1).sum() + penalty).backward()

    fwd = _dispatch_flops(forward)
    bwd = _dispatch_flops(train_step) - fwd
    extra = _dispatch_flops(penalty_step) - fwd - 2 * bwd
    # dispatch counts 2 FLOPs per multiply-add; fvcore's F is in multiply-adds, a forward is 2F.
    return max(extra, 0) / fwd * 2 * f_macs


@functools.lru_cache(maxsize=None)
def cost_model(model_name: str, in_channels: int, num_classes: int, image_size: int) -> CostModel:
    from bench.models import build_model

    model = build_model(model_name, in_channels, num_classes, image_size, seed=0)
    f = forward_macs(model, in_channels, image_size)
    return CostModel(forward_macs=f, second_order_per_sample=second_order_extra_per_sample(model, in_channels, image_size, f))
