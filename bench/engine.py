"""The training engine shared by Original, Retrain and every unlearning method.

Data stays on the device as uint8; batches come from a device-side permutation;
crop and flip are batched tensor ops; bf16 autocast and channels_last on CUDA,
plain fp32 on the CPU; every random draw comes from a seeded generator.
Nothing here synchronises with the host inside a loop except where a caller asks
for a number (an accuracy for a stop rule, a loss for the progress bar).
Training steps go through `train_step` (bench/captured.py): on CUDA each step is
captured in a CUDA graph and replayed, unless `cuda_graphs=False` or
UNLEARN_BENCH_CUDA_GRAPHS=0; on the CPU it runs eagerly.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.augment import Normalizer, crop_flip
from bench.captured import CudaGraphs, GraphBackend, LossFn, TrainStep, capture_enabled_by_env
from bench.data.catalog import Augment
from bench.data.device_data import DeviceData
from bench.environment import cpu_numerics
from bench.errors import CellFailure
from bench.flops import SampleCounter
from bench.progress import SILENT, Progress
from bench.recipe import TrainRecipe  # noqa: F401  (it lived here; kept importable)


@dataclass(frozen=True)
class Batch:
    x: torch.Tensor  # float32 network input (augmented if asked), channels_last on CUDA
    y: torch.Tensor  # int64 labels
    raw: torch.Tensor  # the uint8 images before augmentation, for methods that need more views
    pos: torch.Tensor  # positions of the samples within the DeviceData they came from

    def __len__(self) -> int:
        return self.y.shape[0]


class Engine:
    def __init__(
        self,
        device: torch.device | str,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        augment: Augment,
        *,
        amp: bool | None = None,
        channels_last: bool | None = None,
        cuda_graphs: bool | None = None,
    ):
        self.device = torch.device(device)
        on_cuda = self.device.type == "cuda"
        self.amp = on_cuda if amp is None else amp
        self.channels_last = on_cuda if channels_last is None else channels_last
        # CUDA graphs exist on CUDA only; elsewhere the flag is ignored and steps run eagerly
        self.cuda_graphs = on_cuda and (capture_enabled_by_env() if cuda_graphs is None else cuda_graphs)
        self.normalize = Normalizer(mean, std, self.device)
        self.augment_spec = augment
        self._full_precision_depth = 0  # > 0 inside full_precision(): autocast() is then a no-op

    # ------------------------------------------------------------------ numerics

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.amp or self._full_precision_depth:
            return contextlib.nullcontext()
        # no cast cache: cached bf16 copies of the weights must not outlive a captured step (CUDA
        # graphs need cache_enabled=False), and each forward has its own autocast region anyway
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, cache_enabled=False)

    def weights_key(self) -> dict:
        """What weights trained by this engine depend on beyond their recipe, for checkpoint keys:
        the training precision, and on the CPU the kernels and thread count (bench/numerics.py)."""
        return {"precision": "bf16-autocast" if self.amp else "fp32", **cpu_numerics(self.device)}

    @contextlib.contextmanager
    def full_precision(self):
        """float32 arithmetic for evaluation: autocast off (even inside a caller's autocast, and
        `autocast()` entered inside this block is a no-op, so evaluation code may share helpers
        with training) and, on CUDA, no TF32 in convolutions or matmuls (cuDNN allows TF32
        convolutions by default)."""
        self._full_precision_depth += 1
        try:
            with torch.autocast(device_type=self.device.type, enabled=False):
                if self.device.type != "cuda":
                    yield
                    return
                matmul = torch.backends.cuda.matmul.allow_tf32
                torch.backends.cuda.matmul.allow_tf32 = False
                try:
                    with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, allow_tf32=False):
                        yield
                finally:
                    torch.backends.cuda.matmul.allow_tf32 = matmul
        finally:
            self._full_precision_depth -= 1

    def generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(seed)

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def reset_peak_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_memory_mb(self) -> float | None:
        """Peak device memory allocated since the last reset (CUDA only; None on the CPU)."""
        if self.device.type != "cuda":
            return None
        return torch.cuda.max_memory_allocated(self.device) / 2**20

    def timed(self, fn: Callable[[], object]) -> tuple[float, float | None]:
        """Run `fn` on the harness's clock: (wall-clock seconds, device synchronised at both ends;
        peak device memory in MiB during it, None on the CPU)."""
        self.synchronize()
        self.reset_peak_memory()
        start = time.perf_counter()
        fn()
        self.synchronize()
        return time.perf_counter() - start, self.peak_memory_mb()

    def device_name(self) -> str:
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return f"cpu ({torch.get_num_threads()} threads)"

    def prepare(self, model: nn.Module) -> nn.Module:
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def sgd(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, nesterov: bool = False) -> torch.optim.SGD:
        """SGD, with the fused kernel where this torch build has one for the device."""
        params = list(params)
        try:
            return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov, fused=True)
        except (RuntimeError, TypeError, ValueError):
            return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)

    def graph_backend(self) -> GraphBackend | None:
        """What captures training steps: CUDA graphs on CUDA (unless turned off), else None (eager)."""
        return CudaGraphs(self.device) if self.cuda_graphs else None

    def train_step(self, optimizer: torch.optim.Optimizer, loss_fn: LossFn, *,
                   before_step: Callable[[], None] | None = None, counter: SampleCounter | None = None,
                   before_replay: Callable[[], None] | None = None) -> TrainStep:
        """A training step as a function of its inputs (see bench/captured.py): captured in a
        CUDA graph on CUDA, eager elsewhere. `counter` keeps FLOP counts right on replay."""
        return TrainStep(loss_fn, optimizer, before_step=before_step, counter=counter, graphs=self.graph_backend(),
                         before_replay=before_replay)

    # ------------------------------------------------------------------ batches

    def to_input(self, raw: torch.Tensor, generator: torch.Generator | None, augment: bool) -> torch.Tensor:
        """uint8 images -> normalised float input, with crop/flip when `augment`."""
        if augment:
            if generator is None:
                raise ValueError("augmentation needs a generator")
            raw = crop_flip(raw, self.augment_spec.crop_pad, self.augment_spec.flip, generator)
        x = self.normalize(raw)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def batch_at(self, data: DeviceData, pos: torch.Tensor, generator: torch.Generator | None, augment: bool) -> Batch:
        raw = data.images[pos]
        return Batch(self.to_input(raw, generator, augment), data.labels[pos], raw, pos)

    def batches(
        self,
        data: DeviceData,
        batch_size: int,
        generator: torch.Generator,
        *,
        shuffle: bool = True,
        augment: bool = True,
        drop_last: bool = False,
    ) -> Iterator[Batch]:
        """One pass over `data` in batches, in a random order drawn on the device."""
        n = len(data)
        order = torch.randperm(n, device=self.device, generator=generator) if shuffle else torch.arange(n, device=self.device)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            yield self.batch_at(data, order[start : start + batch_size], generator, augment)

    def sample(self, data: DeviceData, batch_size: int, generator: torch.Generator, *, augment: bool = True) -> Batch:
        """A random batch of distinct samples from `data` (all of it if smaller)."""
        n = len(data)
        pos = torch.randperm(n, device=self.device, generator=generator)[: min(batch_size, n)]
        return self.batch_at(data, pos, generator, augment)

    @staticmethod
    def steps_per_epoch(n: int, batch_size: int, drop_last: bool = False) -> int:
        return n // batch_size if drop_last else math.ceil(n / batch_size)

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def true_label_outputs(self, model: nn.Module, data: DeviceData, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
        """Per sample: softmax probability of the true label, and whether the argmax is right.

        Eval mode, no augmentation, float32 (no autocast even where training uses bf16:
        near-ties in the argmax must not depend on reduced precision). Returns float32
        and bool tensors on the device.
        """
        was_training = model.training
        model.eval()
        probs, correct = [], []
        try:
            with self.full_precision():
                for start in range(0, len(data), batch_size):
                    pos = torch.arange(start, min(start + batch_size, len(data)), device=self.device)
                    batch = self.batch_at(data, pos, None, augment=False)
                    logits = model(batch.x).float()
                    p = torch.softmax(logits, dim=1)
                    probs.append(p.gather(1, batch.y[:, None]).squeeze(1))
                    correct.append(p.argmax(1) == batch.y)
        finally:
            model.train(was_training)
        if not probs:
            empty = torch.zeros(0, device=self.device)
            return empty, empty.bool()
        return torch.cat(probs), torch.cat(correct)

    def accuracy(self, model: nn.Module, data: DeviceData, batch_size: int = 1024) -> float:
        """Accuracy in percent (one host synchronisation)."""
        if len(data) == 0:
            return float("nan")
        _, correct = self.true_label_outputs(model, data, batch_size)
        return 100.0 * correct.float().mean().item()

    # ------------------------------------------------------------------ supervised training

    def cross_entropy_step(self, model: nn.Module, opt: torch.optim.Optimizer,
                           counter: SampleCounter | None = None) -> TrainStep:
        """`step(x, y)`: one cross-entropy SGD step of `model`; returns the (detached, float32)
        loss without syncing (on the graph path a buffer the next step overwrites: use it at once)."""

        def loss_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            with self.autocast():
                return F.cross_entropy(model(x), y)

        return self.train_step(opt, loss_fn, counter=counter)

    def train_supervised(
        self,
        model: nn.Module,
        data: DeviceData,
        recipe: TrainRecipe,
        seed: int,
        progress: Progress = SILENT,
        desc: str = "train",
        counter: SampleCounter | None = None,
    ) -> dict:
        """Train `model` in place on `data` with `recipe` (SGD, multi-step lr). Returns stats.
        `counter`: the SampleCounter attached to `model`, if any (kept right on graph replays)."""
        generator = self.generator(seed)
        opt = self.sgd(model.parameters(), recipe.lr, recipe.momentum, recipe.weight_decay)
        step = self.cross_entropy_step(model, opt, counter)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=recipe.milestone_epochs(), gamma=recipe.gamma)
        model.train()

        def one_epoch() -> Iterator[torch.Tensor]:
            for batch in self.batches(data, recipe.batch_size, generator):
                yield step(batch.x, batch.y)
            sched.step()

        stats = self.train_epochs(recipe.epochs, one_epoch, progress=progress, desc=desc)
        return {**stats, "step": step.stats.as_dict()}

    def train_epochs(self, epochs: int, one_epoch: Callable[[], Iterator[torch.Tensor]], *,
                     progress: Progress = SILENT, desc: str = "train") -> dict:
        """The epoch loop every from-scratch training shares (classifier, encoder, image-text):
        `one_epoch()` runs one pass and yields each step's detached loss. The epoch's mean loss
        is read once per epoch (one host sync) for the progress bar and the divergence check.
        Returns the wall-clock seconds, the last epoch's mean loss and the device."""
        self.synchronize()
        start = time.perf_counter()
        last_loss = float("nan")
        bar = progress.epochs(range(epochs), desc=desc, total=epochs)
        for epoch in bar:
            loss_sum = torch.zeros((), device=self.device)
            steps = 0
            for loss in one_epoch():
                loss_sum += loss
                steps += 1
            last_loss = (loss_sum / max(steps, 1)).item()
            if not math.isfinite(last_loss):
                raise CellFailure(f"{desc} diverged: mean loss is {last_loss} at epoch {epoch + 1}")
            bar.set_postfix(loss=f"{last_loss:.3f}")
        self.synchronize()
        return {"seconds": time.perf_counter() - start, "final_loss": last_loss, "device": self.device_name()}
