"""The Hessian of a trained network's loss on a probe set, reached only through products H V.

The loss is the mean cross-entropy over the probe images (x, y) with the network in eval mode
(BatchNorm on its running statistics, no dropout), so it is a fixed function of the parameters.
`HessianOperator.matmat` multiplies a block of vectors; the sharpness probe
(backend.probes.curvature) runs its estimators through it.

Speed, measured on 2 CPU cores (bench/hessian.py, bench/probes.py):
- Up to `batch_size` images the gradient graphs are built once (create_graph) and every pass
  differentiates them again (retain_graph): no forward pass per product. Larger probe sets rebuild
  them once per pass, that is once per block of vectors. On the CPU the graphs cover 128 images
  each (1.6x faster products than one graph of 512).
- Eval BatchNorm is an affine map per channel, so it is folded into the convolution before it:
  conv(x, W) * s + t == conv(x, W * s, t), the same function of (W, gamma, beta), hence the same
  Hessian, without BatchNorm's double backward over whole activation maps (~40% of a product).
- A block of k vectors is one batched double backward (`is_grads_batched`: vmap over the graph's
  backward). On a GPU that fills the device that one product leaves idle; on this CPU a batched
  pass cost 1.15-1.5x more per product than single ones (the cores are busy with one already;
  forward-over-reverse vmap, torch.func.jvp of grad, was slower still: 1.3-2x), so `block_size`
  is 1 there and k is chosen from the free device memory on CUDA.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from backend.models import UnitNet

CPU_CHUNK = 128  # images per gradient graph on the CPU: 1.6x faster products than one graph of 512 there
MAX_BLOCK = 64   # vectors per batched pass at most: past this a GPU pass is as busy as it gets


class HessianOperator:
    """V -> V H, H the Hessian of the mean cross-entropy over (x, y) w.r.t. `params` of `model`, on
    blocks of flat vectors (b, n) in the parameters' order; passes of at most `block` vectors.
    `products` counts the products spent. A block may live on a subset S of the parameters
    (`matmat(..., support=...)`): the sub-block H_SS from the same graphs, so several parameter
    scopes share one operator.

    `model` should be an eval-mode probe copy (see `probe_network`); its other parameters are
    constants here. Probe sets of up to `batch_size` images keep their gradient graphs for every
    pass; larger ones rebuild them chunk by chunk for each pass (memory: one chunk's graph).
    """

    def __init__(self, model: nn.Module, x: Tensor, y: Tensor, params: list[nn.Parameter], batch_size: int = 512,
                 on_products: Callable[[int], None] | None = None, block: int | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if len(x) == 0 or len(x) != len(y):
            raise ValueError(f"need as many labels as probe images, got {len(x)} images and {len(y)} labels")
        self.model, self.params = model, params
        self.shapes = [p.shape for p in params]
        self.numels = [p.numel() for p in params]
        self.n = sum(self.numels)
        self.dtype, self.device = params[0].dtype, params[0].device
        # on the CPU, smaller graphs: their activation maps stay in cache (and out of fresh mmap pages)
        chunk = min(batch_size, CPU_CHUNK) if self.device.type == "cpu" else batch_size
        self.chunks = list(zip(x.split(chunk), y.split(chunk)))
        self.count = len(x)
        self.products = 0
        self.graphs_built = 0  # gradient graphs built (create_graph): once per chunk when they are kept
        self.on_products = on_products
        before = _allocated(self.device)
        self._graphs = [self._gradient(*c) for c in self.chunks] if len(x) <= batch_size else None
        # graphs rebuilt per pass: one chunk's, built to be measured and freed
        measured = self._graphs or ([self._gradient(*self.chunks[0])] if self.device.type == "cuda" else [])
        graph_bytes = _allocated(self.device) - before
        del measured
        self.block = block if block is not None else block_size(self.device, graph_bytes)
        if self.block < 1:
            raise ValueError(f"block must be >= 1, got {self.block}")

    def _gradient(self, xc: Tensor, yc: Tensor) -> list[Tensor]:
        """Gradient of the chunk's share of the mean loss, sum over the chunk / N, still
        differentiable (create_graph): the chunks' products add up to the product of the mean loss."""
        self.graphs_built += 1
        loss = F.cross_entropy(self.model(xc), yc, reduction="sum") / self.count
        return list(torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True,
                                        materialize_grads=True))

    def _hvp(self, grads: list[Tensor], vs: list[Tensor], support: list[int], batched: bool,
             retain: bool) -> Tensor | None:
        """d(g_S . v_S)/dtheta_S for each v of the block, (b, n_S) flat (or (n_S,) unbatched), S the
        parameter tensors `support`; None when no gradient block there depends on theta (the Hessian
        is then zero). With S less than everything, the backward stops at S's parameters: a scope of
        the upper units costs only the passes through them."""
        pairs = [(grads[i], v) for i, v in zip(support, vs, strict=True) if grads[i].requires_grad]
        if not pairs:
            return None
        gs, ws = zip(*pairs)
        hv = torch.autograd.grad(gs, [self.params[i] for i in support], ws, retain_graph=retain, allow_unused=True,
                                 materialize_grads=True, is_grads_batched=batched)
        return torch.cat([t.reshape(len(vs[0]) if batched else 1, -1) for t in hv], 1)

    def _pass(self, block: Tensor, support: list[int]) -> Tensor:
        """(b, n_S) -> (b, n_S) in one pass over the probe set."""
        b = len(block)
        batched = b > 1
        numels = [self.numels[i] for i in support]
        vs = [c.reshape(b, *self.shapes[i]) if batched else c.reshape(self.shapes[i])
              for c, i in zip(block.contiguous().split(numels, dim=1), support, strict=True)]
        out = torch.zeros(b, sum(numels), dtype=self.dtype, device=self.device)
        if self._graphs is not None:
            for grads in self._graphs:
                hv = self._hvp(grads, vs, support, batched, retain=True)
                if hv is not None:
                    out += hv
        else:
            for xc, yc in self.chunks:
                hv = self._hvp(self._gradient(xc, yc), vs, support, batched, retain=False)
                if hv is not None:
                    out += hv
        return out

    def matmat(self, block: Tensor, support: list[int] | None = None) -> Tensor:
        """(b, n) -> (b, n): row i is H v_i; passes of at most `self.block` vectors. With `support`
        (indices into `params`, in order): (b, n_S) -> (b, n_S), the sub-block H_SS, that is the S part
        of H (v_S, 0), from the same gradient graphs."""
        support = list(range(len(self.params))) if support is None else support
        out = []
        for part in block.split(self.block):
            out.append(self._pass(part, support))
            self.products += len(part)
            if self.on_products is not None:
                self.on_products(len(part))
        return torch.cat(out) if out else block.new_zeros(0, sum(self.numels[i] for i in support))

    def matvec(self, v: Tensor) -> Tensor:
        """(n,) -> (n,)"""
        return self.matmat(v[None])[0]


def block_size(device: torch.device, graph_bytes: int) -> int:
    """Vectors per batched pass: 1 on the CPU (batching was slower per product there, see the module
    docstring); on CUDA as many as half the free memory holds, a batched backward taking about one
    gradient graph's memory per vector, at most MAX_BLOCK."""
    if device.type != "cuda":
        return 1
    free, _ = torch.cuda.mem_get_info(device)
    return max(1, min(MAX_BLOCK, int(0.5 * free / max(graph_bytes, 1))))


def _allocated(device: torch.device) -> int:
    return torch.cuda.memory_allocated(device) if device.type == "cuda" else 0


def probe_network(model: nn.Module) -> nn.Module:
    """An eval-mode copy without gradients anywhere, eval BatchNorm folded into the conv before it.
    The original model is left as it was (mode, flags, .grad)."""
    probe = copy.deepcopy(model).eval().requires_grad_(False)
    fold_batch_norm(probe)
    return probe


def fold_batch_norm(model: nn.Module) -> int:
    """In every nn.Sequential, a conv followed by an eval BatchNorm of its width computes
    conv(x, W * s, b * s + t) with s = gamma / sqrt(var + eps), t = beta - mean * s, and the BatchNorm
    passes its input through. Parameter names and tensors stay where they were, so the function of
    the parameters (and its Hessian) is unchanged. Returns how many pairs were folded."""
    folded = 0
    for seq in model.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        layers = list(seq)
        for conv, bn in zip(layers, layers[1:]):
            if (isinstance(conv, nn.Conv1d | nn.Conv2d | nn.Conv3d) and isinstance(bn, _BatchNorm)
                    and not bn.training and bn.running_var is not None and bn.num_features == conv.out_channels):
                conv.forward = partial(_conv_then_batch_norm, conv, bn)
                bn.forward = _identity
                folded += 1
    return folded


def _conv_then_batch_norm(conv: nn.Module, bn: _BatchNorm, x: Tensor) -> Tensor:
    scale = torch.rsqrt(bn.running_var + bn.eps)  # (C_out,)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    if conv.bias is not None:
        shift = shift + conv.bias * scale
    weight = conv.weight * scale.view(-1, *[1] * (conv.weight.ndim - 1))  # (C_out, C_in/groups, *kernel)
    return conv._conv_forward(x, weight, shift)


def _identity(x: Tensor) -> Tensor:
    return x


def unit_parameters(model: UnitNet, units: list[str] | None) -> list[tuple[str, nn.Parameter]]:
    """Named parameters of the chosen units in network order (all of them for None)."""
    if units is None:
        chosen = model.unit_names
    else:
        unknown = [u for u in units if u not in model.body]
        if unknown:
            raise ValueError(f"unknown unit(s) {unknown}; this network has {model.unit_names}")
        if not units:
            raise ValueError(f"empty unit subset; choose among {model.unit_names}")
        chosen = [u for u in model.unit_names if u in units]
    named = [(f"body.{u}.{n}", p) for u in chosen for n, p in model.body[u].named_parameters()]
    if not named:
        raise ValueError(f"unit(s) {chosen} have no parameters")
    return named


def hessian_operator(model: UnitNet, x: Tensor, y: Tensor, *, units: list[str] | None = None,
                     batch_size: int = 512, on_products: Callable[[int], None] | None = None,
                     block: int | None = None) -> HessianOperator:
    """The Hessian of `model`'s eval-mode mean loss on (x, y) w.r.t. the units' parameters."""
    names = {name for name, _ in unit_parameters(model, units)}
    probe = probe_network(model)
    params = [p.requires_grad_(True) for name, p in probe.named_parameters() if name in names]
    device = params[0].device
    x = x.to(device, params[0].dtype) if x.is_floating_point() else x.to(device)
    return HessianOperator(probe, x, y.to(device), params, batch_size, on_products, block)
