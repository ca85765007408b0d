"""Class ids against the classes a source has, checked at submit without loading an image (torch-free).

A class id that does not exist (`classes.include` holding 10**12), a `first` beyond the source's
classes, or a selection that leaves fewer than two classes is refused where the study is typed, with
the field and the valid ids, instead of failing on a worker. The sources that can list their classes
without decoding a pixel: the built-ins (digits, synthetic), torchvision data sets (their class lists
are fixed: MNIST 10, CIFAR-100 100, ...; nothing is read or downloaded) and ImageFolder roots (the
class sub-folder names). A folder that cannot be listed here is left to the folder check and the
worker. List folders only after the data roots check (backend.specs.roots): this reads directories.

The engine's `backend.data.task.select_classes` runs the same `kept_classes`, so the browser, the
CLI and a worker refuse a selection with one message.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from backend.specs.base import SpecError, spec_parts
from backend.specs.data import (
    ClassSelection, DataSpec, DigitsSource, FolderSource, SyntheticSource, TorchvisionSource,
)

# Classes of each torchvision data set, as its loader labels them (EMNIST by split; its `letters`
# split labels 1..26, with an empty class 0 named 'N/A').
TORCHVISION_CLASSES = {"MNIST": 10, "FashionMNIST": 10, "KMNIST": 10, "QMNIST": 10, "USPS": 10, "SVHN": 10,
                       "CIFAR10": 10, "CIFAR100": 100, "STL10": 10}
EMNIST_CLASSES = {"byclass": 62, "bymerge": 47, "balanced": 47, "letters": 27, "digits": 10, "mnist": 10}


def source_classes(source: Any) -> tuple[str, ...] | int | None:
    """The class names of a source where it has them (a folder), else how many classes it has; None
    when that cannot be known without reading it (a folder not readable here)."""
    if isinstance(source, DigitsSource):
        return 10
    if isinstance(source, SyntheticSource):
        return source.n_classes
    if isinstance(source, TorchvisionSource):
        return EMNIST_CLASSES[source.split] if source.name == "EMNIST" else TORCHVISION_CLASSES[source.name]
    if isinstance(source, FolderSource):
        return folder_class_names(source.root)
    return None


def folder_class_names(root: str) -> tuple[str, ...] | None:
    """An ImageFolder root's class names in label order (sorted sub-folder names of train/, or of the
    root when it is one tree), listing directories only; None when the root is missing, unreadable or
    malformed (backend.specs.folders says what is wrong with it)."""
    path = Path(root).expanduser()
    try:
        if not path.is_dir():
            return None
        train, test = path / "train", path / "test"
        if train.is_dir() != test.is_dir():
            return None
        tree = train if train.is_dir() else path
        names = tuple(sorted(p.name for p in tree.iterdir() if p.is_dir() and not p.name.startswith(".")))
    except OSError:
        return None
    return names or None


def kept_classes(classes: tuple[str, ...] | int, sel: ClassSelection, where: str = "data.classes") -> int:
    """How many classes `sel` keeps of a source with `classes` (names, or a count): include, then
    first, then half, then fraction, as `select_classes` applies them. A SpecError naming the field
    (`{where}.include`, `{where}.first`, or `where`) when an id does not exist or fewer than 2 remain."""
    n = classes if isinstance(classes, int) else len(classes)
    k = n
    if sel.include is not None:
        bad = [c for c in sel.include if not 0 <= c < n]
        if bad:
            raise SpecError(f"classes {_shown(bad)} do not exist: the source has {n} classes, {_valid(classes)}",
                            field=f"{where}.include")
        k = len(sel.include)
    if sel.first is not None:
        if sel.first > k:
            raise SpecError(f"asks for the first {sel.first} of {k} classes", field=f"{where}.first")
        k = sel.first
    how = ""
    if sel.half is not None:  # Yosinski's halves: A the first ceil(k/2) of a permutation, B the rest
        how = f" (half {sel.half} of {k})"
        k = math.ceil(k / 2) if sel.half == "A" else k - math.ceil(k / 2)
    if sel.fraction is not None:
        how = f" (a share of {sel.fraction:g} of {k})"
        k = round(sel.fraction * k)
    if k < 2:
        raise SpecError(f"keeps {k} class(es){how}; a task needs at least 2", field=where)
    return k


def check_classes(study: Any, jobs: Iterable[tuple[Any, Mapping[str, Any]]] = (),
                  derived: Mapping[str, str] | None = None) -> None:
    """Every task of `study` keeps classes its source has, or a SpecError naming the field.

    `jobs`: (spec, labels) of the study's planned jobs, whose tasks the study derived from its own
    (Yosinski's halves and class groups, a cross-data-set study's class shares); `derived` maps the
    selection step the study kind sets in them (`include`, `half`, `fraction`) to the study field
    that asked for it, which the error then names. The study's own tasks are checked first, so a
    job's task fails only on what the study derived."""
    known: dict[int, tuple[str, ...] | int | None] = {}

    def classes_of(data: DataSpec) -> tuple[str, ...] | int | None:
        if id(data.source) not in known:
            known[id(data.source)] = source_classes(data.source)
        return known[id(data.source)]

    for field, data in spec_parts(study, DataSpec):
        if (classes := classes_of(data)) is not None:
            kept_classes(classes, data.classes, f"{field}.classes")
    seen: set[int] = set()
    for spec, labels in jobs:
        for _, data in spec_parts(spec, DataSpec):
            if id(data) in seen or (classes := classes_of(data)) is None:
                continue
            seen.add(id(data))
            try:
                kept_classes(classes, data.classes)
            except SpecError as exc:
                # The step that failed: an id (include) or a count (first), or the last step that
                # left fewer than 2 classes.
                step = exc.field.rsplit(".", 1)[-1]
                if step == "classes":
                    step = next((s for s in ("fraction", "half", "include") if getattr(data.classes, s) is not None),
                                step)
                field = (derived or {}).get(step, exc.field)
                where = f" (target {labels['target']!r})" if "target" in labels else ""
                raise SpecError(f"{str(exc).split(': ', 1)[1]}{where}", field=field) from None


def _shown(ids: list[int]) -> str:
    return str(ids) if len(ids) <= 5 else f"[{', '.join(map(str, ids[:5]))}, ...] ({len(ids)} ids)"


def _valid(classes: tuple[str, ...] | int) -> str:
    """The valid ids, and the names where the source has them."""
    n = classes if isinstance(classes, int) else len(classes)
    if isinstance(classes, int):
        return f"ids 0..{n - 1}"
    named = ", ".join(f"{i} {name}" for i, name in enumerate(classes[:20]))
    return f"ids 0..{n - 1} ({named}{', ...' if n > 20 else ''})"
