"""The unlearning-method registry and the context a method runs in.

A method is a frozen dataclass whose fields are its hyperparameters, with a
`run(self, ctx)` that changes `ctx.model` in place, registered by one decorator:

    @register_method("FT")
    @dataclass(frozen=True)
    class FineTune:
        \"\"\"Fine-tune on the retain set with CE and a cosine schedule.\"\"\"
        epochs: int = hp(10, low=1, doc="passes over D_r")
        lr: float = hp(0.02, low=0.0)

        def run(self, ctx: UnlearnContext) -> None:
            opt = ctx.sgd(ctx.model.parameters(), lr=self.lr)
            ...

The harness owns everything else: the data on the device, batching and
augmentation, the clock, the FLOP count (every forward and backward through the
model or the teacher is counted by hooks), divergence checks and the metrics.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import torch
import torch.nn as nn

from bench.data.device_data import DeviceData
from bench.captured import StepStats, TrainStep
from bench.engine import Batch, Engine
from bench.flops import SampleCounter, SampleCounts
from bench.hparams import ParamSpec, build_params, param_specs
from bench.models import Classifier
from bench.names import SCENARIO_KINDS, REFERENCE_METHODS  # noqa: F401  (re-exported)
from bench.progress import SILENT, Progress
from bench.registry import Registry
from bench.splits import Scenario
from bench.tasks import CLASSIFY, supports



@dataclass(frozen=True)
class MethodInfo:
    name: str
    cls: type
    summary: str
    scenarios: tuple[str, ...]
    smoke: dict[str, Any] = dataclasses.field(default_factory=dict)
    tasks: tuple[str, ...] = (CLASSIFY,)  # kinds of task it runs on (bench/tasks); "*" = every task
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)  # a preset's own defaults
    preset_of: str | None = None  # a preset: the method whose class (procedure) it runs

    def supports_task(self, task: str) -> bool:
        return supports(self.tasks, task)

    def params(self, overrides: Mapping[str, Any] | None = None) -> Any:
        return build_params(self.cls, {**self.defaults, **(overrides or {})}, self.name)

    def param_specs(self) -> list[ParamSpec]:
        return [dataclasses.replace(s, default=self.defaults[s.name]) if s.name in self.defaults else s
                for s in param_specs(self.cls)]


METHODS: Registry[MethodInfo] = Registry("method")


def register_method(
    name: str, *, scenarios: tuple[str, ...] = SCENARIO_KINDS, smoke: Mapping[str, Any] | None = None,
    tasks: tuple[str, ...] = (CLASSIFY,),
) -> Callable[[type], type]:
    """Register a dataclass with a `run(ctx)` method as the unlearning method `name`.

    `tasks`: the kinds of task (bench/tasks) it supports; its `run(ctx)` gets that task's context.

    `smoke`: hyperparameter overrides for smoke runs (profiles with `smoke = true`, such as
    `quick`, and the registry test): a shorter schedule of the same method, nothing else.
    """

    def register(cls: type) -> type:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"method {name}: {cls.__name__} must be a dataclass of its hyperparameters")
        if not callable(getattr(cls, "run", None)):
            raise TypeError(f"method {name}: {cls.__name__} has no run(self, ctx)")
        unknown = set(scenarios) - set(SCENARIO_KINDS)
        if unknown:
            raise ValueError(f"method {name}: unknown scenario kinds {sorted(unknown)}")
        summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        info = MethodInfo(name=name, cls=cls, summary=summary, scenarios=tuple(scenarios), smoke=dict(smoke or {}),
                          tasks=tuple(tasks))
        info.params(info.smoke)  # a smoke setting must be valid for the method's own hyperparameters
        METHODS.add(name, info)
        cls.method_name = name
        return cls

    return register


def register_preset(name: str, base: str, defaults: Mapping[str, Any], *, summary: str,
                    smoke: Mapping[str, Any] | None = None) -> MethodInfo:
    """Register `name`: method `base`'s procedure (its class) with other default hyperparameters,
    e.g. a geometry's reference weights. It runs, records and tables as a method of its own;
    `smoke` defaults to the base's. Register it after `base`, in the base's file."""
    info = METHODS.get(base)
    preset = dataclasses.replace(info, name=name, summary=summary, defaults={**info.defaults, **defaults},
                                 smoke=dict(info.smoke if smoke is None else smoke), preset_of=base)
    preset.params(preset.smoke)  # the preset's defaults and smoke settings must be valid
    return METHODS.add(name, preset)


@dataclass
class ReportedCost:
    """Cost and time measured elsewhere (Retrain's training, possibly from the checkpoint cache)."""

    counts: SampleCounts
    seconds: float
    device: str
    cached: bool
    peak_memory_mb: float | None = None
    step: dict | None = None  # which path the training steps took (StepStats), when known


class UnlearnContext:
    """What a method sees: the model to change, the data, and the harness's tools."""

    task = CLASSIFY  # the kind of task (bench/tasks); a task's own context subclass says which

    def __init__(
        self,
        *,
        engine: Engine,
        model: Classifier,
        retain: DeviceData,
        forget: DeviceData,
        test: DeviceData,
        scenario: Scenario,
        num_classes: int,
        seed: int,
        counter: SampleCounter,
        make_original: Callable[[], Classifier],
        retrain: Callable[[], tuple[dict, ReportedCost]] | None = None,
        progress: Progress = SILENT,
        label: str = "",
        nonmembers: DeviceData | None = None,
    ):
        self.engine = engine
        self.model = model
        self.retain = retain
        self.forget = forget
        self.test = test  # the evaluation's D_t: for stop rules (ctx.accuracy) only, never to train on
        self._nonmembers = nonmembers
        self.scenario = scenario
        self.num_classes = num_classes
        self.seed = seed
        self.generator = engine.generator(seed)
        self.info: dict[str, Any] = {}
        self.reported_cost: ReportedCost | None = None
        self._counter = counter
        self._make_original = make_original
        self._retrain = retrain
        self._original: Classifier | None = None
        self._progress = progress
        self._label = label
        self._nonfinite = torch.zeros((), dtype=torch.bool, device=engine.device)
        self._train_steps: list[TrainStep] = []
        # run before every step replayed from a CUDA graph (a replay runs no module hooks): e.g. a tuning cap
        self.before_replay: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ facts

    @property
    def device(self) -> torch.device:
        return self.engine.device

    @property
    def nonmembers(self) -> DeviceData:
        """Held-out non-member images disjoint from every evaluation set (the profile's
        `[eval] nonmember_pool`), for methods that train on non-members."""
        if self._nonmembers is None:
            from bench.errors import ConfigError

            raise ConfigError("this method trains on non-members, and evaluation uses the whole test set: set "
                              "[eval] nonmember_pool = \"test-half\" in the profile to hold out a disjoint pool")
        return self._nonmembers

    @property
    def forget_class(self) -> int | None:
        return self.scenario.forget_class

    @property
    def original(self) -> Classifier:
        """A frozen copy of the Original model (eval mode, no gradients), e.g. as a teacher.
        Its forward passes are counted like the student's."""
        if self._original is None:
            teacher = self._make_original()
            teacher.eval()
            for p in teacher.parameters():
                p.requires_grad_(False)
            self._counter.attach(teacher)
            self._original = teacher
        return self._original

    def note(self, **facts: Any) -> None:
        """Record method-specific facts (e.g. the pass at which a stop rule fired)."""
        self.info.update(facts)

    # ------------------------------------------------------------------ data

    def epochs(self, n: int, desc: str | None = None) -> Iterator[int]:
        """range(n) with a progress bar."""
        return iter(self._progress.epochs(range(n), desc=desc or self._label, total=n))

    def batches(self, data: DeviceData, batch_size: int, *, shuffle: bool = True, augment: bool = True,
                drop_last: bool = False) -> Iterator[Batch]:
        return self.engine.batches(data, batch_size, self.generator, shuffle=shuffle, augment=augment, drop_last=drop_last)

    def sample(self, data: DeviceData, batch_size: int, *, augment: bool = True) -> Batch:
        """A random batch of distinct samples of `data`."""
        return self.engine.sample(data, batch_size, self.generator, augment=augment)

    def view(self, raw: torch.Tensor, augment: bool = True) -> torch.Tensor:
        """Another (independently augmented) network input from a batch's uint8 images."""
        return self.engine.to_input(raw, self.generator, augment)

    def steps_per_epoch(self, data: DeviceData, batch_size: int, drop_last: bool = False) -> int:
        return self.engine.steps_per_epoch(len(data), batch_size, drop_last)

    # ------------------------------------------------------------------ compute

    def autocast(self) -> contextlib.AbstractContextManager:
        return self.engine.autocast()

    def forward(self, x: torch.Tensor, model: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, penultimate features), computed under the engine's autocast, returned as float32."""
        model = model or self.model
        with self.autocast():
            logits, feats = model.forward_with_features(x)
        return logits.float(), feats.float()

    def logits(self, x: torch.Tensor, model: nn.Module | None = None) -> torch.Tensor:
        model = model or self.model
        with self.autocast():
            out = model(x)
        return out.float()

    def input_gradient(self, output: torch.Tensor, inputs: torch.Tensor, *, output_in_loss: bool = True) -> torch.Tensor:
        """d output / d inputs with create_graph=True, so a loss on it can be differentiated
        again (a double backward). The extra pass is counted in the FLOPs.

        The double backward costs one forward, two backward passes and a measured extra.
        The hooks see the second backward only when the loss also backpropagates through
        the model's output (e.g. CE on the same logits); pass `output_in_loss=False` when
        it does not (a penalty on inputs used for nothing else), so it is counted here."""
        (grad,) = torch.autograd.grad(output, inputs, create_graph=True)
        self._counter.add_second_order(inputs.shape[0])
        if not output_in_loss:
            self._counter.add_backward(inputs.shape[0])
        return grad

    @contextlib.contextmanager
    def counted_elsewhere(self, *, forward: int = 0, backward: int = 0, second_order: int = 0):
        """Passes run inside are invisible to the hooks (e.g. under torch.func transforms): they are
        not hook-counted, and the given sample passes are counted instead."""
        with self._counter.paused():
            yield
        self._counter.add_forward(forward)
        self._counter.add_backward(backward)
        self._counter.add_second_order(second_order)

    def sgd(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4, nesterov: bool = False) -> torch.optim.SGD:
        return self.engine.sgd(params, lr, momentum, weight_decay, nesterov)

    @staticmethod
    def cosine(optimizer: torch.optim.Optimizer, total_steps: int, final_lr: float = 1e-4) -> torch.optim.lr_scheduler.LRScheduler:
        """Cosine decay of every group's lr to `final_lr` over `total_steps` scheduler steps."""
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps), eta_min=final_lr)

    def step(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, scheduler=None,
             before_step: Callable[[], None] | None = None) -> None:
        """zero_grad, backward, (before_step), optimizer step, (scheduler step). No host sync:
        a non-finite loss is remembered on the device and checked once at the end."""
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if before_step is not None:
            before_step()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        self.watch(loss)

    def train_step(self, optimizer: torch.optim.Optimizer, loss_fn: Callable[..., torch.Tensor], scheduler=None,
                   before_step: Callable[[], None] | None = None) -> Callable[..., None]:
        """`step(*inputs)`: what `step(opt, loss_fn(*inputs), scheduler, before_step)` does, with the
        loss written as a function of the step's inputs, so that on CUDA the whole step (forward,
        backward, `before_step`, fused SGD) is captured in a CUDA graph and replayed.

        `loss_fn` takes tensors (batches, labels) and numbers (e.g. a loss weight that changes
        between steps) and returns the scalar loss; it must not synchronise with the host or draw
        random numbers (draw them outside and pass them in). FLOPs are counted either way; the
        record says which path ran (bench/captured.py)."""
        stepper = self.engine.train_step(optimizer, loss_fn, before_step=before_step, counter=self._counter,
                                         before_replay=self._before_replay)
        self._train_steps.append(stepper)

        def step(*inputs) -> None:
            self.watch(stepper(*inputs))
            if scheduler is not None:
                scheduler.step()

        return step

    def _before_replay(self) -> None:
        for check in self.before_replay:
            check()

    def step_stats(self) -> dict[str, Any] | None:
        """Which path this context's training steps took (None if it made none through `train_step`)."""
        return StepStats.merge([s.stats for s in self._train_steps])

    def watch(self, value: torch.Tensor) -> None:
        """Remember (on the device) whether `value` was ever non-finite."""
        self._nonfinite |= ~torch.isfinite(value.detach()).all()

    def saw_nonfinite(self) -> bool:
        return bool(self._nonfinite.item())

    def accuracy(self, data: DeviceData, model: nn.Module | None = None) -> float:
        """Accuracy in percent (eval mode, no augmentation, float32; one host sync), e.g. for a
        stop rule. Part of the method's cost: counted as evaluated samples (2F each), apart
        from the training passes."""
        with self._counter.paused():
            acc = self.engine.accuracy(model or self.model, data)
        self._counter.add_evaluation(len(data))
        return acc

    # ------------------------------------------------------------------ the gold standard

    def retrain(self) -> None:
        """Replace the model by Retrain (trained from scratch on D_r with the profile's recipe,
        or loaded from the checkpoint cache); the cost and time reported are its training's."""
        if self._retrain is None:
            raise RuntimeError("this context offers no Retrain")
        state, cost = self._retrain()
        self.model.load_state_dict(state)
        self.reported_cost = cost


def resolve_methods(names: list[str] | None) -> list[MethodInfo]:
    """Methods by name (globs allowed), in registry order; all when `names` is None. The method
    packages are imported first, so every caller sees the whole registry."""
    from bench.plugins import load_all_methods

    load_all_methods()
    if names is None:
        return [METHODS.get(n) for n in METHODS]
    chosen: list[str] = []
    for pattern in names:
        matched = METHODS.names(pattern) if any(ch in pattern for ch in "*?[") else [METHODS.get(pattern).name]
        if not matched:
            METHODS.get(pattern)  # raises with the known names
        chosen += [m for m in matched if m not in chosen]
    return [METHODS.get(n) for n in METHODS if n in chosen]
