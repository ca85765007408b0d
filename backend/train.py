"""The trainer: the whole data set lives on the device and batches are sliced from it.

No DataLoader on the hot path: images are normalised once into one float tensor, batches are
index slices of a seeded permutation, augmentation is batched tensor ops, evaluation runs in
`torch.inference_mode()` with large batches. On CUDA it adds autocast; channels_last everywhere
(on a 2-core CPU it nearly tripled a small convnet's throughput).
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from backend.data import Images, TaskData, load_task
from backend.models import UnitNet, build_model
from backend.specs import TrainJobSpec, TrainSpec


@dataclass(frozen=True)
class Progress:
    """What the trainer reports: during an epoch (phase 'train') and after its evaluation ('eval')."""

    phase: str
    epoch: int  # 1-based
    epochs: int
    step: int  # within the epoch, 1-based
    steps: int
    loss: float
    accuracy: float | None = None  # test accuracy, 'eval' phase only


ProgressFn = Callable[[Progress], None]
StepHook = Callable[[int, int, nn.Module, Tensor, Tensor], None]


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    lr: float
    seconds: float
    images_per_second: float = 0.0  # training throughput of the epoch, evaluation excluded


@dataclass
class TrainResult:
    history: list[EpochRecord] = field(default_factory=list)
    images_seen: int = 0
    train_seconds: float = 0.0  # optimisation steps only, evaluation excluded

    @property
    def final_accuracy(self) -> float:
        return self.history[-1].test_accuracy

    def best_mean(self, k: int = 10) -> float:
        """Yosinski's score: the mean of the k best test evaluations."""
        best = sorted((r.test_accuracy for r in self.history), reverse=True)[:k]
        return sum(best) / len(best)

    def to_dict(self) -> dict:
        return {"history": [asdict(r) for r in self.history], "images_seen": self.images_seen,
                "train_seconds": self.train_seconds, "final_accuracy": self.final_accuracy,
                "best10_accuracy": self.best_mean(10)}


@dataclass
class TrainState:
    """Everything needed to continue a run after `epoch` exactly as if it had not stopped."""

    epoch: int
    model: dict[str, Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    generator: Tensor  # batch order and augmentation
    rng: Tensor  # dropout (the device's global generator)
    result: TrainResult


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std of the training images, in 0..1 units; part of a model's input."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, images: Images) -> Normalization:
        x = images.x.float().div_(255)
        return cls(tuple(x.mean((0, 2, 3)).tolist()), tuple(x.std((0, 2, 3)).clamp_min(1e-3).tolist()))

    def apply(self, images: Images, device: torch.device, channels_last: bool) -> tuple[Tensor, Tensor]:
        """uint8 (N, C, H, W) on the CPU -> normalised float (N, C, H, W) and labels on `device`."""
        x = images.x.to(device, non_blocking=True).float().div_(255)
        mean = torch.tensor(self.mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, -1, 1, 1)
        x = x.sub_(mean).div_(std)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, images.y.to(device)


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here")
    return device


@dataclass
class Trained:
    model: UnitNet
    result: TrainResult
    data: TaskData
    normalization: Normalization
    # theta_r: the weights before the first optimisation step (train jobs only; Chen et al.'s T reads it).
    init: dict[str, Tensor] | None = None
    init_drawn = False  # theta_r is this run's own (an imported network's is drawn afresh: backend.pretrained)

    # What a checkpoint records of any network a job yields (backend.pretrained.Imported has the same).
    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.data.image_shape

    @property
    def n_classes(self) -> int:
        return self.data.n_classes

    @property
    def fingerprint(self) -> str:
        return self.data.fingerprint

    def metrics(self) -> dict[str, Any]:
        return self.result.to_dict() if self.result.history else {}  # none before training


def train_job(job: TrainJobSpec, device: str | torch.device = "auto", progress: ProgressFn | None = None,
              data: TaskData | None = None, on_init: Callable[[Trained], None] | None = None,
              **fit_options: Any) -> Trained:
    """Load the task (unless given), build the network from the job's seed and train it.

    The initial weights are kept in `Trained.init`; `on_init` receives the network before its first
    step (a worker saves them there, so a resumed run keeps those of its first start).
    """
    device = resolve_device(device) if isinstance(device, str) else device
    data = data or load_task(job.data)
    torch.manual_seed(job.train.seed)
    model = build_model(job.model, data.image_shape, data.n_classes)
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trained = Trained(model, TrainResult(), data, Normalization.of(data.train), init)
    if on_init:
        on_init(trained)
    train = trained.normalization.apply(data.train, device, job.train.channels_last)
    test = trained.normalization.apply(data.test, device, job.train.channels_last)
    trained.result = fit(model, train, test, job.train, progress, **fit_options)
    return trained


def fit(model: nn.Module, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], spec: TrainSpec,
        progress: ProgressFn | None = None, on_epoch: Callable[[TrainState], None] | None = None,
        resume: TrainState | None = None, on_step: StepHook | None = None) -> TrainResult:
    """Train `model` in place on device tensors (inputs may be images or cached features), for the
    first `spec.epochs_run` epochs of the schedule.

    `on_epoch` receives the state after every epoch (a worker saves it); `resume` continues from one.
    `on_step(step, total, model, x, y)` is called before each optimisation step (step 0-based, of
    `total`) and after the last: a probe of the landscape along training.
    """
    x, y = train
    device = x.device
    torch.manual_seed(spec.seed)  # dropout
    model.to(device)
    if spec.channels_last and x.ndim == 4:
        model.to(memory_format=torch.channels_last)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("nothing to train: every parameter is frozen")
    optimizer = _optimizer(trainable, spec)
    n = len(x)
    steps = max(1, n // spec.batch_size)  # drop the last partial batch: steady BatchNorm statistics
    batch = min(spec.batch_size, n)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(spec, steps))
    autocast, scaler = mixed_precision(device, spec.amp)
    g = torch.Generator(device=device).manual_seed(spec.seed)
    result = TrainResult()
    if resume is not None:
        model.load_state_dict(resume.model)
        optimizer.load_state_dict(resume.optimizer)
        schedule.load_state_dict(resume.scheduler)
        g.set_state(resume.generator)
        _set_rng_state(device, resume.rng)
        result = resume.result
    epochs = spec.epochs_run
    total = epochs * steps
    for epoch in range(len(result.history) + 1, epochs + 1):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(n, device=device, generator=g)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        last_report = started
        for step in range(1, steps + 1):
            idx = order[(step - 1) * batch: step * batch]
            xb, yb = x[idx], y[idx]
            if on_step:
                on_step((epoch - 1) * steps + step - 1, total, model, x, y)
            if spec.augment != "none" and xb.ndim == 4:
                xb = augment(xb, flip=spec.augment == "flip_crop", generator=g)
            with autocast:
                logits = model(xb)
                loss = F.cross_entropy(logits, yb, label_smoothing=spec.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            loss_sum += loss.detach() * len(yb)
            correct += (logits.argmax(1) == yb).sum()
            if progress and (time.perf_counter() - last_report > 0.5 or step == steps):
                last_report = time.perf_counter()
                progress(Progress("train", epoch, epochs, step, steps, loss.item()))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_seconds = time.perf_counter() - started
        seen = steps * batch
        test_loss, test_acc = evaluate(model, *test, batch_size=eval_batch_size(spec, device), amp=spec.amp)
        record = EpochRecord(epoch, loss_sum.item() / seen, correct.item() / seen, test_loss, test_acc,
                             optimizer.param_groups[0]["lr"], time.perf_counter() - started,
                             seen / max(train_seconds, 1e-9))
        result.history.append(record)
        result.images_seen += seen
        result.train_seconds += train_seconds
        if progress:
            progress(Progress("eval", epoch, epochs, steps, steps, record.train_loss, test_acc))
        if on_epoch:
            on_epoch(TrainState(epoch, model.state_dict(), optimizer.state_dict(), schedule.state_dict(),
                                g.get_state(), _rng_state(device), result))
    if on_step:
        on_step(total, total, model, x, y)
    return result


def _rng_state(device: torch.device) -> Tensor:
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


def _set_rng_state(device: torch.device, state: Tensor) -> None:
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    else:
        torch.set_rng_state(state)


def eval_batch_size(spec: TrainSpec, device: torch.device) -> int:
    """Large batches feed a GPU; on a CPU, cache-sized ones are faster (measured: 128 vs 2048, 2.3x)."""
    return spec.eval_batch_size or (2048 if device.type == "cuda" else 128)


@torch.inference_mode()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 128,
             amp: bool = True) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over the whole set, the model in eval mode."""
    was_training = model.training
    model.eval()
    autocast, _ = mixed_precision(x.device, amp)
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.int64)
    for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
        with autocast:
            logits = model(xb)
        loss_sum += F.cross_entropy(logits.float(), yb, reduction="sum")
        correct += (logits.argmax(1) == yb).sum()
    model.train(was_training)
    return loss_sum.item() / len(y), correct.item() / len(y)


def augment(x: Tensor, flip: bool, generator: torch.Generator, pad: int = 2) -> Tensor:
    """Random translation by up to `pad` pixels (zero = mean padding) and optional horizontal flip,
    one draw per image, as batched indexing: (B, C, H, W) -> (B, C, H, W)."""
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b, 1), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b, 1), device=x.device, generator=generator)
    rows = dy + torch.arange(h, device=x.device)  # (B, H)
    cols = dx + torch.arange(w, device=x.device)  # (B, W)
    if flip:
        flipped = torch.rand(b, 1, device=x.device, generator=generator) < 0.5
        cols = torch.where(flipped, cols.flip(1), cols)
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


def _optimizer(named: list[tuple[str, nn.Parameter]], spec: TrainSpec) -> torch.optim.Optimizer:
    # Weight decay on weight matrices and kernels only: not on biases or norm scales (1-d), and
    # frozen parameters are not handed to the optimiser at all.
    decay = [p for _, p in named if p.ndim > 1]
    no_decay = [p for _, p in named if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": spec.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if spec.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=spec.lr, momentum=spec.momentum, nesterov=spec.momentum > 0)
    return torch.optim.AdamW(groups, lr=spec.lr)


def _lr_lambda(spec: TrainSpec, steps_per_epoch: int) -> Callable[[int], float]:
    total = spec.epochs * steps_per_epoch
    warmup = round(spec.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total - warmup)
        if spec.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
        if spec.schedule == "step":
            return 0.1 ** ((t >= 0.5) + (t >= 0.75))
        return 1.0

    return factor


def mixed_precision(device: torch.device, enabled: bool):
    """Autocast context and gradient scaler: bfloat16 where supported, else float16 with scaling."""
    if not (enabled and device.type == "cuda"):
        return nullcontext(), torch.amp.GradScaler("cuda", enabled=False)
    if torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16), torch.amp.GradScaler("cuda", enabled=False)
    return torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")
