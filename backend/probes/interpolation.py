"""The loss landscape between and around trained networks, and where their mistakes overlap.

- `linear_path`: Neyshabur et al. 2020's linear interpolation theta(l) = (1-l) theta_a + l theta_b,
  test loss and accuracy along it, and Frankle et al.'s scalar barrier, the most the loss rises above
  the chord between the end points. Two networks in one basin (P-T vs P-T) show no barrier.
- `loss_plane`: Li et al. 2018's filter-normalised random plane around one network.
- `mistake_overlap`: how two networks' errors on the same test set coincide.

Interpolated weights do not go with interpolated BatchNorm statistics, so those are re-estimated at
every point from training images, or the path is wrong (PAPERS.md section 2). The probes work on a
copy and never modify a network. Images x are normalised (N, C, H, W), labels y (N,).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from backend.checkpoints import bare_module

ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class InterpolationPath:
    alphas: list[float]     # 0 (net_a) .. 1 (net_b), evenly spaced, both ends included
    loss: list[float]       # mean cross-entropy on (x, y) at each alpha
    accuracy: list[float]   # in 0..1
    bn_reestimated: bool    # BatchNorm statistics recomputed at every point
    barrier: float = field(init=False)           # max_l loss(l) - ((1-l) loss(0) + l loss(1)) >= 0
    accuracy_barrier: float = field(init=False)  # max_l ((1-l) acc(0) + l acc(1)) - acc(l) >= 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "barrier", max(above_chord(self.alphas, self.loss)))
        object.__setattr__(self, "accuracy_barrier", max(above_chord(self.alphas, [-a for a in self.accuracy])))


@dataclass(frozen=True)
class LossPlane:
    coords: list[float]     # steps along each direction, -span..span; exactly 0 in the middle when odd
    loss: np.ndarray        # (resolution, resolution): [i, j] at theta + coords[i] d1 + coords[j] d2
    accuracy: np.ndarray    # (resolution, resolution), in 0..1
    bn_reestimated: bool = False


def above_chord(alphas: list[float], values: list[float]) -> list[float]:
    """values(l) - ((1-l) values(0) + l values(1)) per alpha; exactly 0 at both ends."""
    first, last = values[0], values[-1]
    return [v - ((1 - l) * first + l * last) for l, v in zip(alphas, values, strict=True)]


def linear_path(net_a: nn.Module, net_b: nn.Module, x: Tensor, y: Tensor, points: int = 25,
                bn_images: Tensor | None = None, batch_size: int = 256,
                progress: ProgressFn | None = None) -> InterpolationPath:
    """Loss and accuracy on (x, y) at `points` evenly spaced l in [0, 1] of theta(l).

    Every parameter and every floating-point buffer is interpolated; integer buffers
    (num_batches_tracked) are net_a's. The two networks need the same state-dict names and shapes.
    A network with BatchNorm needs `bn_images` (N', C, H, W) to re-estimate its statistics at each
    point; they are ignored for one without.
    """
    if points < 2:
        raise ValueError(f"points must be >= 2 (the two end points), got {points}")
    _check_data(x, y)
    net_a, net_b = bare_module(net_a), bare_module(net_b)
    same_architecture(net_a, net_b)
    reestimate = has_batch_norm(net_a)
    if reestimate and bn_images is None:
        raise ValueError("the networks have BatchNorm: pass bn_images (normalised training images) so its "
                         "statistics can be re-estimated at each interpolation point")
    work = copy.deepcopy(net_a)
    a = {k: v.detach() for k, v in net_a.state_dict().items()}
    b = {k: v.detach().to(a[k].device) for k, v in net_b.state_dict().items()}
    slots = work.state_dict()  # detached views sharing storage with work's parameters and buffers
    alphas = [i / (points - 1) for i in range(points)]
    measured = []  # (loss, accuracy) per alpha
    for i, alpha in enumerate(alphas):
        with torch.no_grad():
            for k, slot in slots.items():
                slot.copy_(_lerp(a[k], b[k], alpha) if slot.is_floating_point() else a[k])
        if reestimate:
            reestimate_batch_norm(work, bn_images, batch_size)
        measured.append(evaluate(work, x, y, batch_size))
        if progress is not None:
            progress((i + 1) / points, f"alpha {alpha:.3f}: loss {measured[-1][0]:.4f}")
    return InterpolationPath(alphas, [m[0] for m in measured], [m[1] for m in measured], reestimate)


def loss_plane(net: nn.Module, x: Tensor, y: Tensor, resolution: int = 11, span: float = 1.0, seed: int = 0,
               bn_images: Tensor | None = None, batch_size: int = 256,
               progress: ProgressFn | None = None) -> LossPlane:
    """Loss and accuracy on (x, y) at theta + a d1 + b d2 for a, b on an even grid over [-span, span].

    d1, d2 are `filter_normalised_direction`s drawn in that order from a CPU generator seeded with
    `seed`, so a seed gives the same plane on any device. They are zero on 1-d parameters (biases,
    norm scales and shifts), as in Li et al.'s plots, so only weight tensors move; buffers stay the
    network's, unless `bn_images` are given and the BatchNorm statistics are re-estimated at every point.
    """
    if resolution < 2:
        raise ValueError(f"resolution must be >= 2, got {resolution}")
    _check_data(x, y)
    work = copy.deepcopy(bare_module(net))
    reestimate = bn_images is not None and has_batch_norm(work)
    generator = torch.Generator().manual_seed(seed)
    d1 = filter_normalised_direction(work, generator)
    d2 = filter_normalised_direction(work, generator)
    params = dict(work.named_parameters())
    theta = {k: p.detach().clone() for k, p in params.items()}
    # integer numerators: the ends are exactly +-span and the middle exactly 0
    coords = [span * (2 * i - (resolution - 1)) / (resolution - 1) for i in range(resolution)]
    loss = np.zeros((resolution, resolution))
    accuracy = np.zeros((resolution, resolution))
    for i, alpha in enumerate(coords):
        for j, beta in enumerate(coords):
            with torch.no_grad():
                for k, p in params.items():
                    p.copy_(theta[k] + alpha * d1[k] + beta * d2[k])
            if reestimate:
                reestimate_batch_norm(work, bn_images, batch_size)
            loss[i, j], accuracy[i, j] = evaluate(work, x, y, batch_size)
            if progress is not None:
                progress((i * resolution + j + 1) / resolution**2, f"({alpha:.2f}, {beta:.2f}): {loss[i, j]:.4f}")
    return LossPlane(coords, loss, accuracy, reestimate)


def filter_normalised_direction(net: nn.Module, generator: torch.Generator) -> dict[str, Tensor]:
    """A Gaussian direction per named parameter (same shapes and devices), drawn on the CPU from
    `generator`; each filter (slice along dim 0 of a tensor of >= 2 dims: a conv's output channel, a
    linear layer's output row) rescaled to the norm of that filter of the network (Li et al. 2018),
    so a step is in proportion to each filter and rescaling a filter (a no-op under BatchNorm) cannot
    change the picture.
    1-d parameters (biases, norm scales and shifts) get zeros and use none of the generator."""
    direction = {}
    for name, p in net.named_parameters():
        if p.dim() < 2:
            direction[name] = torch.zeros_like(p, requires_grad=False)
            continue
        d = torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device)
        # (F, ...) -> (F,) filter norms; 1e-10 as Li et al., for a filter that came out all zeros
        scale = p.detach().flatten(1).norm(dim=1) / (d.flatten(1).norm(dim=1) + 1e-10)
        direction[name] = d * scale.view(-1, *[1] * (p.dim() - 1))
    return direction


def mistake_overlap(pred_a: Tensor, pred_b: Tensor, y: Tensor) -> dict[str, float | int]:
    """Counts (int) both_wrong, only_a_wrong, only_b_wrong, both_right over the N examples, each also
    as `<name>_fraction` of N; `disagreement`, the fraction where the predictions differ (both may
    be wrong differently); `mistake_jaccard` = both_wrong / examples either gets wrong (0 when
    neither errs); `examples` = N. Labels are 1-d (N,) tensors, on any devices."""
    pred_a, pred_b, y = pred_a.cpu(), pred_b.cpu(), y.cpu()
    if not (pred_a.dim() == pred_b.dim() == y.dim() == 1) or not len(y) == len(pred_a) == len(pred_b) > 0:
        raise ValueError(f"need three non-empty 1-d label tensors of one length, got shapes "
                         f"{tuple(pred_a.shape)}, {tuple(pred_b.shape)}, {tuple(y.shape)}")
    wrong_a, wrong_b = pred_a != y, pred_b != y
    counts = {"both_wrong": wrong_a & wrong_b, "only_a_wrong": wrong_a & ~wrong_b,
              "only_b_wrong": ~wrong_a & wrong_b, "both_right": ~wrong_a & ~wrong_b}
    n = len(y)
    out: dict[str, float | int] = {"examples": n, **{k: int(v.sum()) for k, v in counts.items()}}
    out.update({f"{k}_fraction": out[k] / n for k in counts})
    out["disagreement"] = int((pred_a != pred_b).sum()) / n
    either = n - out["both_right"]
    out["mistake_jaccard"] = out["both_wrong"] / either if either else 0.0
    return out


def predictions(net: nn.Module, x: Tensor, batch_size: int = 256) -> Tensor:
    """Argmax labels (N,) int64 on the CPU of `net` in eval mode; its modes are restored after."""
    device = _device(net)
    with _evaluating(net), torch.inference_mode():
        return torch.cat([net(xb.to(device)).argmax(1).cpu() for xb in x.split(batch_size)])


def evaluate(net: nn.Module, x: Tensor, y: Tensor, batch_size: int = 256) -> tuple[float, float]:
    """(mean cross-entropy, accuracy in 0..1) of `net` in eval mode on (x, y); modes restored after."""
    _check_data(x, y)
    device = _device(net)
    with _evaluating(net), torch.inference_mode():
        total = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True):
            logits = net(xb.to(device))  # (B, classes)
            yb = yb.to(device)
            total += F.cross_entropy(logits.float(), yb, reduction="sum").double()
            correct += (logits.argmax(1) == yb).sum()
        return total.item() / len(y), correct.item() / len(y)  # one device sync, at the end


def reestimate_batch_norm(net: nn.Module, images: Tensor, batch_size: int = 256) -> nn.Module:
    """Recompute every BatchNorm's running statistics from `images` (N, C, H, W), in place.

    Statistics reset, momentum None (a cumulative average: the mean over batches of each batch's mean
    and unbiased variance, the data's own mean when batches are of one size), only the BatchNorms in
    train mode (dropout off, and a frozen unit's BatchNorm is re-estimated too), no gradients.
    Momenta are restored; the network is left in eval mode.
    """
    if len(images) == 0:
        raise ValueError("no images to re-estimate BatchNorm statistics from")
    norms = [m for m in net.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    momenta = [m.momentum for m in norms]
    net.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    device = _device(net)
    with torch.no_grad():
        for xb in images.split(batch_size):
            net(xb.to(device))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    return net.eval()


def has_batch_norm(net: nn.Module) -> bool:
    """True when some BatchNorm keeps running statistics (one without uses batch statistics anyway)."""
    return any(isinstance(m, _BatchNorm) and m.track_running_stats for m in net.modules())


def same_architecture(net_a: nn.Module, net_b: nn.Module) -> None:
    """ValueError naming the first state-dict entry (net_a's order, then net_b's extras) that one
    network lacks or that differs in shape."""
    sa, sb = net_a.state_dict(), net_b.state_dict()
    for key in [*sa, *(k for k in sb if k not in sa)]:
        if key not in sa or key not in sb:
            problem = f"is only in net_{'a' if key in sa else 'b'}"
        elif sa[key].shape != sb[key].shape:
            problem = f"is {tuple(sa[key].shape)} in net_a, {tuple(sb[key].shape)} in net_b"
        else:
            continue
        raise ValueError(f"the networks differ in architecture: {key!r} {problem}")


def _lerp(a: Tensor, b: Tensor, alpha: float) -> Tensor:
    """(1-alpha) a + alpha b, from the nearer end (as torch.lerp): exactly a at 0, exactly b at 1,
    and exactly a all along when a == b, so a path of a network with itself is flat."""
    diff = b - a
    return a + alpha * diff if alpha < 0.5 else b - (1 - alpha) * diff


@contextmanager
def _evaluating(net: nn.Module) -> Iterator[nn.Module]:
    """Eval mode inside; every module's own mode restored after (a frozen unit's eval BatchNorm too)."""
    modes = [(m, m.training) for m in net.modules()]
    net.eval()
    try:
        yield net
    finally:
        for m, mode in modes:
            m.training = mode


def _device(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


def _check_data(x: Tensor, y: Tensor) -> None:
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(f"need as many labels as images, and some: got {len(x)} images and {len(y)} labels")
