"""Centred kernel alignment (CKA): how alike the representations of two networks' units are on the same
images (Kornblith et al. 2019, "Similarity of neural network representations revisited").

For Gram matrices K, L (n, n) of two representations of n images, CKA(K, L) = HSIC(K, L) /
sqrt(HSIC(K, K) HSIC(L, L)). Linear CKA (K = X X^T) is invariant to orthogonal maps and isotropic
scaling of the features, not to arbitrary invertible linear maps. RBF CKA uses
k(x, y) = exp(-|x - y|^2 / (2 sigma^2)), sigma = width x the median distance between the images. Estimators:
- "full": exact, the biased HSIC <HKH, HLH> (H = I - 11^T / n) on all images, in float64. Memory per
  unit: the smaller of its centred features (n, d) and its centred Gram (n, n).
- "minibatch": the unbiased HSIC (Song et al. 2012) summed over fixed batches of the images, CKA taken
  from the sums at the end (Nguyen, Raghu & Kornblith 2021, "Do wide and deep networks learn the same
  things?"; torch-cka computes the same). Memory O(batch^2) per unit, however many images; it converges
  to the population CKA as the batches grow. Each batch's unbiased HSIC is an inner product of
  U-centred Grams (hsic.u_center), so while a unit's batches of Grams are small enough to keep, they
  are its representation (`batch_representations`) and a study compares networks by one product of
  Gram rows, as for the exact estimator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from backend.models import UnitNet
from backend.probes.hsic import (
    CONSTANT_RTOL, PAIR_GRAMS, UnitRep, UnitReps, cka_of_representations, full_rep, hsic_pairs, hsic_self,
    rbf_of_distances, rep_cka, sq_distances, u_center,
)

# Images per forward call on the CPU: 2,048 MNIST images through the default convnet take 0.11 s in
# chunks of 64 and 0.23 s in chunks of 256 (2 cores): the activations stay in cache and the allocator
# reuses its blocks. Smaller images go as many pixels a call (180 8x8 digits through the digits convnet:
# one call per unit instead of three, 10-25% less forward time). A GPU takes a whole batch at once.
CPU_CHUNK = 64
CPU_CHUNK_PIXELS = CPU_CHUNK * 28 * 28
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class CKAResult:
    matrix: Tensor          # (len(units_a), len(units_b)) float64, CPU; 0 in a constant unit's row/column
    units_a: list[str]
    units_b: list[str]
    constant_a: list[str]   # units of net A whose features are constant on these images (dead)
    constant_b: list[str]
    images: int             # images in the estimate (the minibatch estimator drops a last batch of < 4)
    batches: int            # 1 for the full-batch estimator


# ---------------------------------------------------------------- CKA of two plain representations

def linear_cka(x: Tensor, y: Tensor) -> float:
    """Exact linear CKA of two representations (n, ...) of the same n images; 0.0 if either is constant."""
    _same_count(x, y)
    return rep_cka(full_rep(x.flatten(1), "linear", 0.0), full_rep(y.flatten(1), "linear", 0.0))


def rbf_cka(x: Tensor, y: Tensor, width: float = 0.8) -> float:
    """Exact RBF CKA (biased HSIC, as Kornblith et al.) of two representations of the same n images."""
    _same_count(x, y)
    return rep_cka(full_rep(x.flatten(1), "rbf", width), full_rep(y.flatten(1), "rbf", width))


def _same_count(x: Tensor, y: Tensor) -> None:
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} images but y has {len(y)}: CKA compares representations of the same images")


# ---------------------------------------------------------------- the full-batch estimator

def _full(sides: list[_Side], progress: Progress | None) -> tuple[Tensor, list[bool], list[bool], int, int]:
    """Exact CKA of the sides' units: (Sa, Sb) matrix, constant flags of A's and B's units, images, 1."""
    n = len(sides[0].x)
    steps = sum(side.stop for side in sides) * -(-n // sides[0].batch)
    reps, done = [], 0
    for side in sides:
        def scaled(step: int, message: str, before: int = done) -> None:
            if progress:
                progress((before + step) / steps, message)
        reps.append(side_representations(side, scaled))
        done += side.stop * -(-n // side.batch)
    matrix = cka_of_representations(reps[0], reps[-1])
    return matrix, [r.norm == 0 for r in reps[0]], [r.norm == 0 for r in reps[-1]], n, 1


def side_representations(side: _Side, progress: Callable[[int, str], None] | None = None) -> UnitReps:
    """A network's wanted units on all its images, each reduced to its UnitRep for the exact estimator,
    in slot order. The network runs unit by unit over all images, holding one unit's outputs and
    their input. `progress(steps done, message)` after each batch of images through a unit."""
    n = len(side.x)
    chunk = side.batch if side.device.type == "cuda" else min(side.batch, cpu_chunk(side.x))
    found: dict[int, UnitRep] = {}
    h, done = side.x, 0
    for i in range(side.stop):
        outs = []
        for start in range(0, n, side.batch):
            for c in range(start, min(start + side.batch, n), chunk):
                outs.append(side.net(h[c:c + chunk].to(side.device), start=i, stop=i + 1))
            done += 1
            if progress:
                progress(done, f"CKA {side.net.unit_names[i]}: images {start + 1}-{min(start + side.batch, n)} of {n}")
        h = torch.cat(outs)
        del outs
        if i in side.slot:
            found[i] = full_rep(_features(h, side.pool), side.kernel, side.width)
    return UnitReps([found[i] for i in sorted(found)])


def unit_representations(net: UnitNet, x: Tensor, *, kernel: Literal["linear", "rbf"] = "linear",
                         pool: Literal["flatten", "mean"] = "flatten", rbf_width: float = 0.8,
                         batch_size: int = 256, estimator: Literal["full", "minibatch"] = "full") -> UnitReps:
    """Every unit of `net` on the images x (normalised for it), reduced for the estimator: what
    `cka_of_representations` needs of this network for any comparison on these images. For the
    minibatch estimator, the batches are consecutive runs of batch_size images, as in `cka_matrix`."""
    _check_options(kernel, estimator, batch_size, pool, rbf_width)
    if estimator == "minibatch" and len(x) < 4:
        raise ValueError(f"the minibatch estimator needs at least 4 images, got {len(x)}")
    side = _Side(net, x, list(net.unit_names), kernel, rbf_width, pool, batch_size)
    with _evaluating(net), torch.inference_mode():
        return side_representations(side) if estimator == "full" else batch_representations(side)


def minibatch_starts(n: int, batch: int) -> list[int]:
    """The first image of each batch of the minibatch estimator. It divides by b (b - 3): a last batch of
    fewer than 4 images is dropped."""
    return [s for s in range(0, n, batch) if n - s >= 4]


def keeps_batch_grams(images: int, batch: int) -> bool:
    """Whether the minibatch estimator's representations (about images x batch numbers per unit) are
    small enough to keep per network, as `batch_representations` does; if not, pairs stream batch by batch."""
    return sum(min(batch, images - s) ** 2 for s in minibatch_starts(images, batch)) <= PAIR_GRAMS**2


def batch_representations(side: _Side) -> UnitReps:
    """A network's wanted units for the minibatch estimator, in slot order. Per unit: each batch's
    zero-diagonal Gram (the same as `_minibatch` sums over), U-centred and divided by sqrt(b (b - 3)), the
    batches flattened one after another, so that the dot product of two units' vectors is their unbiased
    HSIC summed over the batches, and CKA = dot / (norm_a norm_b) as for the exact estimator."""
    blocks, varies = [], torch.zeros(len(side.units), dtype=torch.bool)
    for start in minibatch_starts(len(side.x), side.batch):
        k, constant = side.grams(start)  # (S, b, b) float64, (S,)
        b = k.shape[-1]
        blocks.append(u_center(k).flatten(1).div_((b * (b - 3)) ** 0.5))  # (S, b^2)
        varies |= ~constant.cpu()
    rows = torch.cat(blocks, 1) if len(blocks) > 1 else blocks[0]  # (S, sum of b^2)
    norms = torch.linalg.vector_norm(rows, dim=1).tolist()
    reps = [UnitRep(None, row, norm) if live and norm > 0 else UnitRep(None, None, 0.0)
            for row, norm, live in zip(rows, norms, varies.tolist())]
    rows[torch.tensor([r.gram is None for r in reps], device=rows.device)] = 0
    return UnitReps(reps, rows if any(r.norm for r in reps) else None)


# ---------------------------------------------------------------- a network's side; the minibatch estimator

class _Side:
    """One network, its images and its wanted units (slots, in network order) for either estimator.

    Minibatch: each batch runs through the units in cache-sized chunks; each wanted unit's chunk features
    go, minus a fixed shift, into a (batch, d) buffer reused every batch, and while still in cache into
    the lower block rows of a float32 Gram, the chunk against itself and the chunks before it: about
    half the products of a whole x x^T. The unbiased HSIC does not change when every feature vector
    moves by the same vector, so the shift (the unit's mean on the first chunk) costs nothing in
    exactness and keeps the float32 Gram entries small next to the float64 sums they feed."""

    def __init__(self, net: UnitNet, x: Tensor, units: list[str], kernel: str, width: float, pool: str,
                 batch: int):
        self.net, self.x, self.units = net, x, units
        self.kernel, self.width, self.pool, self.batch = kernel, width, pool, batch
        self.slot = {net.unit_names.index(u): k for k, u in enumerate(units)}  # unit index -> slot
        self.stop = max(self.slot) + 1  # units to run
        self.device = next(net.parameters(), torch.empty(0)).device
        self.buffers: list[Tensor] = []  # per slot, (batch, d)
        self.shifts: list[Tensor] = []  # per slot, (d,)
        self.lower: list[Tensor] = []  # per slot, (batch, batch); block rows set up to the diagonal

    def grams(self, start: int) -> tuple[Tensor, Tensor]:
        """The batch from image `start` -> zero-diagonal Grams (S, n, n) float64, constant flags (S,) bool."""
        x = self.x[start:start + self.batch]
        n = len(x)
        chunk = n if self.device.type == "cuda" else cpu_chunk(x)
        for c in range(0, n, chunk):
            h = x[c:c + chunk].to(self.device)
            for i in range(self.stop):
                h = self.net(h, start=i, stop=i + 1)
                if i in self.slot:
                    self._keep(self.slot[i], _features(h, self.pool), c)
        # all units at once, symmetric from the lower block rows (in their float32: the same numbers, half
        # the bytes), then (S, n, n) float64
        k = torch.stack([lower[:n, :n] for lower in self.lower])
        k = (k.tril() + k.tril(-1).transpose(1, 2)).double()
        trace = k.diagonal(dim1=1, dim2=2).sum(1)
        # ||X - mean||^2 against ||X||^2 (exact when the shift is the batch mean, close otherwise)
        constant = trace - k.sum((1, 2)) / n <= CONSTANT_RTOL**2 * (trace + n * self.shift_norms())
        if self.kernel == "rbf":
            for unit, dead in zip(k, constant.tolist()):
                if not dead:
                    unit.copy_(rbf_of_distances(sq_distances(unit), self.width))
        if constant.any():
            k[constant] = 0
        k.diagonal(dim1=1, dim2=2).zero_()
        return k, constant

    def shift_norms(self) -> Tensor:
        """(S,) float64: each slot's ||shift||^2."""
        return torch.stack([shift.double().square().sum() for shift in self.shifts])

    def _keep(self, slot: int, f: Tensor, start: int) -> None:
        """Chunk features f (c, d) -> rows start.. of the slot's buffer, and their Gram block row."""
        if slot == len(self.buffers):  # first chunk ever: slots fill in unit order
            dtype = torch.float64 if f.dtype == torch.float64 else torch.float32
            self.buffers.append(torch.empty(self.batch, f.shape[1], dtype=dtype, device=f.device))
            self.shifts.append(f.mean(0, dtype=torch.float64).to(dtype))
            self.lower.append(torch.empty(self.batch, self.batch, dtype=dtype, device=f.device))
        stop = start + len(f)
        rows = torch.sub(f, self.shifts[slot], out=self.buffers[slot][start:stop])
        torch.mm(rows, self.buffers[slot][:stop].T, out=self.lower[slot][start:stop, :stop])  # (c, stop)


def _minibatch(sides: list[_Side], progress: Progress | None) -> tuple[Tensor, list[bool], list[bool], int, int]:
    """Unbiased HSIC summed over batches, CKA from the sums: (Sa, Sb) matrix, constant flags, images, batches."""
    a, b = sides[0], sides[-1]
    n = len(a.x)
    starts = minibatch_starts(n, a.batch)
    sums: tuple[Tensor, ...] = ()
    for done, start in enumerate(starts, 1):
        ka, const_a = a.grams(start)
        kb, const_b = (ka, const_a) if b is a else b.grams(start)
        # (Sa, Sb) pairs, (Sa,) and (Sb,) self terms, and per unit the batches in which it varied
        terms = (hsic_pairs(ka, kb), hsic_self(ka), hsic_self(kb), (~const_a).double(), (~const_b).double())
        sums = tuple(t + u for t, u in zip(sums, terms)) if sums else terms
        if progress:
            progress(done / len(starts), f"CKA batch {done} of {len(starts)}")
    ab, aa, bb, varies_a, varies_b = sums
    # No variation in any batch, or a self-HSIC estimate that is not positive: no CKA to give.
    dead_a, dead_b = (varies_a == 0) | (aa <= 0), (varies_b == 0) | (bb <= 0)
    cka = ab / (aa.clamp(min=0)[:, None] * bb.clamp(min=0)[None]).sqrt()
    matrix = torch.where(dead_a[:, None] | dead_b[None], 0.0, cka).cpu()
    return matrix, dead_a.tolist(), dead_b.tolist(), sum(min(a.batch, n - s) for s in starts), len(starts)


# ---------------------------------------------------------------- the probe

def cka_matrix(net_a: UnitNet, x_a: Tensor, net_b: UnitNet | None = None, x_b: Tensor | None = None, *,
               kernel: Literal["linear", "rbf"] = "linear",
               estimator: Literal["full", "minibatch"] = "full",
               batch_size: int = 256,
               pool: Literal["flatten", "mean"] = "flatten",
               rbf_width: float = 0.8,
               units_a: list[str] | None = None, units_b: list[str] | None = None,
               progress: Callable[[float, str], None] | None = None) -> CKAResult:
    """CKA between every unit in `units_a` of net A and every unit in `units_b` of net B (default: all).

    x_a, x_b: the same images, each normalised for its own network (x_b defaults to x_a; net_b None
    compares net A with itself, from one forward pass). Networks run in eval mode under inference_mode;
    every module's mode is restored afterwards. A unit's representation is its output flattened
    (pool="flatten") or mean-pooled over space, (B, C, H, W) -> (B, C) (pool="mean").

    estimator="full": exact CKA on all images; batch_size only sizes the forward passes.
    estimator="minibatch": unbiased HSIC summed over consecutive batches of batch_size images in the
    given order (shuffle first if the order means something); a last batch of fewer than 4 is dropped.
    RBF sigma is rbf_width x the median pairwise distance (per batch for the minibatch estimator).

    Constant units: a unit whose features do not vary over the images (a dead layer; for the minibatch
    estimator, within any batch, or whose estimated self-HSIC is not positive) has HSIC(K, K) = 0 and
    no defined CKA. It gets 0.0 in its whole row or column and is listed in constant_a / constant_b; a
    unit varying by less than CONSTANT_RTOL of its norm counts as constant. No NaN is ever returned.

    progress(fraction, message) is called after each batch; an exception it raises stops the run.
    """
    same = (net_b is None or net_b is net_a) and (x_b is None or x_b is x_a)
    net_b, x_b = net_a if net_b is None else net_b, x_a if x_b is None else x_b
    units_a, units_b = _check_units(net_a, units_a, "units_a"), _check_units(net_b, units_b, "units_b")
    _check_options(kernel, estimator, batch_size, pool, rbf_width)
    if len(x_a) != len(x_b):
        raise ValueError(f"x_a has {len(x_a)} images but x_b has {len(x_b)}: CKA compares the networks "
                         "on the same images")
    least = 4 if estimator == "minibatch" else 2
    if len(x_a) < least:
        raise ValueError(f"the {estimator} estimator needs at least {least} images, got {len(x_a)}")
    # Each side's distinct units in network order; one network on one set of images is one side.
    slots_a = _in_order(net_a, units_a + units_b if same else units_a)
    slots_b = slots_a if same else _in_order(net_b, units_b)
    sides = [_Side(net_a, x_a, slots_a, kernel, rbf_width, pool, batch_size)]
    if not same:
        sides.append(_Side(net_b, x_b, slots_b, kernel, rbf_width, pool, batch_size))
    with _evaluating(net_a, net_b), torch.inference_mode():
        matrix, dead_a, dead_b, images, batches = (_full if estimator == "full" else _minibatch)(sides, progress)
    if same:
        matrix = (matrix + matrix.T) / 2  # exactly symmetric, not just to rounding
    ia, ib = [slots_a.index(u) for u in units_a], [slots_b.index(u) for u in units_b]
    return CKAResult(matrix[ia][:, ib], units_a, units_b, [u for u, i in zip(units_a, ia) if dead_a[i]],
                     [u for u, i in zip(units_b, ib) if dead_b[i]], images, batches)


# ---------------------------------------------------------------- helpers

def cpu_chunk(x: Tensor) -> int:
    """Images per forward call on the CPU: CPU_CHUNK MNIST images' worth of pixels, at least CPU_CHUNK."""
    return max(CPU_CHUNK, CPU_CHUNK_PIXELS // max(1, x[0].numel()))



def _features(h: Tensor, pool: str) -> Tensor:
    """A unit's output -> (n, d). CKA sees features only through dot products x_i . x_j, so their order is
    free: a channels_last map is flattened in memory order, (n, H, W, C) -> (n, HWC), without a copy."""
    if h.ndim > 2 and pool == "mean":
        return h.mean(dim=tuple(range(2, h.ndim)))  # (n, C, H, W) -> (n, C)
    if h.ndim == 4 and not h.is_contiguous() and h.is_contiguous(memory_format=torch.channels_last):
        return h.permute(0, 2, 3, 1).flatten(1)
    return h.flatten(1)


def _in_order(net: UnitNet, units: list[str]) -> list[str]:  # distinct units in network order
    return [u for u in net.unit_names if u in set(units)]


def _check_units(net: UnitNet, units: list[str] | None, label: str) -> list[str]:
    if units is None:
        return list(net.unit_names)
    if not units:
        raise ValueError(f"{label} is empty: name at least one unit")
    for u in units:
        if u not in net.unit_names:
            raise ValueError(f"unknown unit {u!r} in {label}; the network's units are {', '.join(net.unit_names)}")
    return list(units)


def _check_options(kernel: str, estimator: str, batch_size: int, pool: str, width: float) -> None:
    choices = {"kernel": (kernel, ("linear", "rbf")), "pool": (pool, ("flatten", "mean")),
               "estimator": (estimator, ("full", "minibatch"))}
    for name, (value, allowed) in choices.items():
        if value not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    least = 4 if estimator == "minibatch" else 1
    if batch_size < least:
        raise ValueError(f"batch_size must be at least {least} for the {estimator} estimator, got {batch_size}"
                         + (" (the unbiased HSIC needs n > 3)" if least == 4 else ""))
    if not width > 0:
        raise ValueError(f"rbf_width must be positive, got {width!r}")


@contextmanager
def _evaluating(*nets: nn.Module) -> Iterator[None]:
    """Eval mode for the measurement, then every module's own mode back."""
    modes = [(m, m.training) for net in nets for m in net.modules()]
    training = [(m, mode) for m, mode in modes if mode]  # a network already in eval mode is left alone
    for net in nets if training else ():
        net.eval()
    try:
        yield
    finally:
        for m, mode in training:
            m.training = mode
