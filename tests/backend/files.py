"""Tiny data files written in the real on-disk formats the sources read."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from PIL import Image


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX as MNIST ships it: magic (0, 0, 0x08 = ubyte, ndim), big-endian dims, raw bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, n_train: int = 40, n_test: int = 20, seed: int = 0) -> tuple[np.ndarray, ...]:
    """root/MNIST/raw/*-ubyte, images whose mean intensity encodes the label (learnable)."""
    rng = np.random.default_rng(seed)
    out = []
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = np.arange(n) % 10
        x = (rng.integers(0, 40, (n, 28, 28)) + y[:, None, None] * 20).astype(np.uint8)
        write_idx(root / "MNIST" / "raw" / f"{prefix}-images-idx3-ubyte", x)
        write_idx(root / "MNIST" / "raw" / f"{prefix}-labels-idx1-ubyte", y)
        out += [x, y]
    return tuple(out)


def write_image_folder(root: Path, classes: dict[str, int], size=(12, 12), mode="RGB", seed=0) -> None:
    """root/<class>/<i>.png, `classes` maps each class name to its image count."""
    rng = np.random.default_rng(seed)
    channels = 3 if mode == "RGB" else 1
    for label, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = rng.integers(0, 50, (size[1], size[0], channels)) + 60 * label
            array = pixels.clip(0, 255).astype(np.uint8)
            Image.fromarray(array.squeeze(-1) if channels == 1 else array).save(root / name / f"{i}.png")
