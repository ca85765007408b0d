"""A Vision Transformer as transfer units: patch, block1..blockN, head.

Every tensor carries timm's name within its unit (patch_embed.proj, cls_token, pos_embed; a block's
norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2; norm and head), and the forward pass is timm's
VisionTransformer's with its defaults (class token, pre-norm blocks, LayerNorm eps 1e-6, exact GELU,
pooling on the class token), so a timm ViT checkpoint loads bit for bit and computes the same outputs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from backend.specs import SpecError, ViTSpec

EPS = 1e-6  # timm's LayerNorm epsilon for ViTs


class PatchEmbed(nn.Module):
    def __init__(self, channels: int, dim: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(channels, dim, patch, stride=patch)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, D, h, w) -> (B, h*w, D)


class Patches(nn.Module):
    """Unit `patch`: image -> tokens, the class token first, position embeddings added."""

    def __init__(self, channels: int, dim: int, patch: int, tokens: int):
        super().__init__()
        self.patch_embed = PatchEmbed(channels, dim, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens + 1, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1 + h*w, D)
        return x + self.pos_embed


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, H, N, d/H)
        # Spelled out rather than F.scaled_dot_product_attention: the Hessian probes differentiate twice,
        # and the fused kernels have no double backward (timm's own non-fused path computes the same).
        attn = (q * (d // self.heads) ** -0.5) @ k.transpose(-2, -1)  # (B, H, N, N)
        return self.proj((attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Unit `block<i>`: pre-norm attention and MLP, each with a residual connection. (B, N, D) -> same."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=EPS), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=EPS), Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Head(nn.Module):
    """Unit `head`: the final norm, then the classifier on the class token. (B, N, D) -> (B, classes)."""

    def __init__(self, dim: int, n_classes: int):
        super().__init__()
        self.norm, self.head = nn.LayerNorm(dim, eps=EPS), nn.Linear(dim, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.norm(x)[:, 0])


def vit(spec: ViTSpec, image_shape: tuple[int, int, int], n_classes: int) -> list[nn.Module]:
    c, h, w = image_shape
    if h % spec.patch or w % spec.patch:
        raise SpecError(f"{h}x{w} images do not tile into {spec.patch}x{spec.patch} patches: bring the data to a "
                        f"multiple of {spec.patch} (data.size, or a study's input.size)", field="model.patch")
    blocks = [Block(spec.dim, spec.heads, spec.mlp_ratio) for _ in range(spec.depth)]
    for module in blocks:
        for m in module.modules():
            if isinstance(m, nn.Linear):  # timm's init: truncated normal weights, zero biases
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
    head = Head(spec.dim, n_classes)
    nn.init.trunc_normal_(head.head.weight, std=0.02)
    nn.init.zeros_(head.head.bias)
    return [Patches(c, spec.dim, spec.patch, (h // spec.patch) * (w // spec.patch)), *blocks, head]
