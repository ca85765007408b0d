"""From a DataSpec to a TaskData: source, class selection, per-class caps, shifts."""

from __future__ import annotations

import math

import torch

from backend.data.images import Images, TaskData
from backend.data.shifts import apply_shifts
from backend.data.sources import load_source
from backend.data.split import cap_per_class
from backend.specs import ClassSelection, DataSpec, SpecError
from backend.specs.classes import kept_classes


def load_task(spec: DataSpec) -> TaskData:
    full = load_source(spec.source, spec.size, spec.channels)
    kept = select_classes(full.classes, spec.classes)
    train = _keep_classes(full.train, kept)
    test = _keep_classes(full.test, kept)
    train = train.take(cap_per_class(train.y, spec.per_class, spec.seed))
    test = test.take(cap_per_class(test.y, spec.test_per_class, spec.seed))
    if len(train) == 0 or len(test) == 0:
        raise SpecError("the selection leaves no training or no test images", field="data.classes")
    if spec.shifts:
        train = Images(apply_shifts(train.x, spec.shifts, stream=0), train.y)
        test = Images(apply_shifts(test.x, spec.shifts, stream=1), test.y)
    return TaskData(train, test, tuple(full.classes[c] for c in kept))


def select_classes(n_classes: int | tuple[str, ...], sel: ClassSelection) -> list[int]:
    """Original indices of the kept classes, in increasing order. `n_classes`: how many the source
    has, or their names (named in the message when an id does not exist). The ids and counts are
    checked by `kept_classes`, which the submit path runs on the spec alone."""
    kept_classes(n_classes, sel)
    kept = sorted(sel.include) if sel.include is not None else list(range(
        n_classes if isinstance(n_classes, int) else len(n_classes)))
    if sel.first is not None:
        kept = kept[: sel.first]
    g = torch.Generator().manual_seed(sel.seed)
    if sel.half is not None:
        # Yosinski's split: a seeded permutation, A = its first ceil(k/2) classes, B = the rest.
        order = torch.randperm(len(kept), generator=g).tolist()
        cut = math.ceil(len(kept) / 2)
        chosen = order[:cut] if sel.half == "A" else order[cut:]
        kept = sorted(kept[i] for i in chosen)
    if sel.fraction is not None:
        order = torch.randperm(len(kept), generator=g).tolist()
        kept = sorted(kept[i] for i in order[: round(sel.fraction * len(kept))])
    return kept


def _keep_classes(images: Images, kept: list[int]) -> Images:
    """Rows whose label is kept, relabelled 0..k-1 in the order of `kept`."""
    relabel = torch.full((int(images.y.max()) + 1 if len(images) else 0,), -1, dtype=torch.int64)
    kept_in_range = [c for c in kept if c < len(relabel)]
    relabel[kept_in_range] = torch.tensor([kept.index(c) for c in kept_in_range], dtype=torch.int64)
    new = relabel[images.y]
    mask = new >= 0
    return Images(images.x[mask], new[mask])
