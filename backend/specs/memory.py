"""Will a network job fit, and how much does it train on? Parameters, training memory and training
images estimated from the spec alone (torch-free), so a conv width of 10^9 or a batch of 10^12 is
refused at submit with the estimate, not queued to crash a worker, and a study's probes can be priced
against its training (backend.studies.plan.sharpness_cost).

The estimate is deliberately simple and generous to the job: float32 weights, their gradients and
two optimiser moments (4 copies); per image, every unit's output kept for the backward pass twice
(activation and its gradient), the input batch, and the evaluation batch (128 images unless the
spec says). Images of unknown size (a folder without data.size) are not guessed: only the weights
are checked for them.
"""

from __future__ import annotations

import os
from typing import Any

from backend import settings
from backend.specs.base import SpecError
from backend.specs.classes import kept_classes, source_classes
from backend.specs.data import DataSpec, DigitsSource, FolderSource, SyntheticSource, TorchvisionSource, native_shape
from backend.specs.models import ConvNetSpec, MLPSpec, ViTSpec

BYTES = 4  # float32
# torchvision ResNets at 224 x 224: parameters, and the floats training keeps per image (saved
# activations and their gradients, about 24 MB and 80 MB).
RESNETS = {"resnet18": (11.7e6, 6e6), "resnet50": (25.6e6, 20e6)}
# Training images per class of each torchvision set (its train split / its classes; EMNIST by split),
# and of scikit-learn's digits (1,797 images, 10 classes) before its held-out share.
TRAIN_PER_CLASS = {"MNIST": 6000, "FashionMNIST": 6000, "KMNIST": 6000, "QMNIST": 6000, "USPS": 729, "SVHN": 7326,
                   "CIFAR10": 5000, "CIFAR100": 500, "STL10": 500}
EMNIST_TRAIN_PER_CLASS = {"byclass": 11257, "bymerge": 14850, "balanced": 2400, "letters": 4800, "digits": 24000,
                          "mnist": 6000}
DIGITS_PER_CLASS = 179.7


def image_shape(data: DataSpec) -> tuple[int, int, int] | None:
    """(C, H, W) the task's images will have, as far as the spec says; None when it does not."""
    channels, size = native_shape(data.source) or (3, None)
    channels, size = data.channels or channels, data.size or size
    return (channels, size, size) if size else None


def training_images(data: DataSpec) -> int | None:
    """About how many training images a task has: the classes it keeps times the images per class (the
    source's own, capped by `per_class`). None when the spec cannot say: a folder without `per_class`
    (its files are not counted here), or one whose classes cannot be listed."""
    source = data.source
    if isinstance(source, DigitsSource):
        own: float | None = DIGITS_PER_CLASS * (1 - source.test_fraction)
    elif isinstance(source, SyntheticSource):
        own = source.train_per_class
    elif isinstance(source, TorchvisionSource):
        own = (EMNIST_TRAIN_PER_CLASS[source.split] if source.name == "EMNIST" else TRAIN_PER_CLASS[source.name])
    else:
        own = None
    per_class = own if data.per_class is None else min(data.per_class, own or data.per_class)
    classes = source_classes(source) if per_class is not None else None
    if classes is None or (isinstance(source, FolderSource) and data.per_class is None):
        return None
    try:
        return round(kept_classes(classes, data.classes) * per_class)
    except SpecError:  # a selection the submit path refuses, naming its field
        return None


def network_cost(model: Any, shape: tuple[int, int, int], classes: int = 1000) -> tuple[float, float]:
    """(parameters, activation floats per image) of a network on images of `shape`."""
    c, h, w = shape
    if isinstance(model, ConvNetSpec):
        params, activations = 0.0, 0.0
        for width in model.channels:
            params += c * width * 9 + (width if model.norm == "none" else 2 * width)  # bias, or norm scale and shift
            activations += 2 * width * h * w  # conv output and what follows it, before the pool
            if min(h, w) > 1:
                h, w = h // 2, w // 2
            c = width
        features = c * h * w
        hidden = model.hidden
    elif isinstance(model, MLPSpec):
        params, activations, features, hidden = 0.0, 0.0, c * h * w, model.hidden
    elif isinstance(model, ViTSpec):  # per block: qkv, proj, the MLP; saved activations per token
        tokens, d = (h // model.patch) * (w // model.patch) + 1, model.dim
        hidden = int(d * model.mlp_ratio)
        block = 4 * d * d + 2 * d * hidden + 9 * d + hidden
        params = c * model.patch ** 2 * d + (tokens + 2) * d + model.depth * block + 2 * d + (d + 1) * classes
        return params, model.depth * tokens * (8 * d + 2 * hidden + model.heads * tokens)
    else:  # a ResNet: scale its 224 x 224 figures by the image area
        params, per_image = RESNETS[model.arch]
        scale = (h * w) / (224 * 224) * (16 if model.small_input else 1)  # no stem downsampling
        return params, per_image * scale / 2  # halved: training_bytes doubles activations for their gradients
    for width in [*hidden, classes]:
        params += features * width + width
        activations += width
        features = width
    return params, activations


def training_bytes(model: Any, data: DataSpec, batch_size: int, eval_batch_size: int | None) -> dict[str, float]:
    """The estimate for one network job: parameters, and bytes for weights and optimiser state, a
    training batch, an evaluation batch, and their total."""
    shape = image_shape(data)
    params, activations = network_cost(model, shape or (1, 1, 1))
    pixels = 0 if shape is None else shape[0] * shape[1] * shape[2]
    if shape is None:
        activations = 0.0  # an unknown size: the weights alone are checked
    per_image = BYTES * (2 * activations + pixels)
    weights = 4 * BYTES * params
    evaluation = BYTES * (activations + pixels) * (eval_batch_size or 128)
    return {"parameters": params, "weights": weights, "batch": per_image * batch_size, "evaluation": evaluation,
            "total": weights + per_image * batch_size + evaluation}


def memory_limit() -> float:
    """Bytes a worker may use: the worker_memory_gb setting, else this machine's physical memory."""
    configured = settings.get("worker_memory_gb")
    if configured:
        return configured * 2**30
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def check_patches(spec: Any) -> None:
    """A SpecError naming model.patch when a ViT network job's images (as far as the spec says their size)
    do not tile into its patches: caught at submit, not in a worker."""
    model, data = getattr(spec, "model", None), getattr(spec, "data", None)
    shape = image_shape(data) if isinstance(model, ViTSpec) and data is not None else None
    if shape is not None and shape[1] % model.patch:
        raise SpecError(f"{shape[1]}x{shape[2]} images do not tile into {model.patch}x{model.patch} patches: choose a "
                        f"patch that divides {shape[1]}, or bring the data to a multiple of {model.patch} (data.size, "
                        "or a study's input.size)", field="model.patch")


def check_fits(spec: Any, where: str = "", limit: float | None = None, device: str = "a worker") -> None:
    """A SpecError with the estimate when a network job's training would not fit in `limit` bytes (by
    default a worker's memory_limit(); a worker passes its own device's)."""
    if not all(hasattr(spec, k) for k in ("model", "data", "train")):
        return
    cost = training_bytes(spec.model, spec.data, spec.train.batch_size, spec.train.eval_batch_size)
    limit = memory_limit() if limit is None else limit
    if cost["total"] > limit:
        # The part to shrink: the network when its weights alone overflow, else the larger of the two batches.
        evaluation = cost["weights"] <= limit and cost["evaluation"] > cost["batch"]
        field = "model" if cost["weights"] > limit else "train.eval_batch_size" if evaluation else "train.batch_size"
        raise SpecError(f"this network would need about {_gb(cost['total'])} to train ({cost['parameters']:.3g} "
                        f"parameters, {_gb(cost['weights'])} for weights and optimiser state, {_gb(cost['batch'])} "
                        f"per training batch, {_gb(cost['evaluation'])} per evaluation batch) but {device} has "
                        f"{_gb(limit)}: shrink the network or the {'evaluation ' if evaluation else ''}batch",
                        field=f"{where}{field}")


def _gb(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"
