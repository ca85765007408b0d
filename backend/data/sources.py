"""Data sources: each turns its spec into train and test `Images` in a common format.

Sources that decode files (torchvision, folder) are cached on disk as safetensors keyed by the
source spec, the format and, for folders, the listing, so a folder of PNGs is decoded once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from safetensors.torch import load_file, save_file

from backend import settings
from backend.data.formats import convert
from backend.data.images import Images, TaskData
from backend.data.split import stratified_split
from backend.data.synthetic import synthetic_task
from backend.specs import (
    DigitsSource, FolderSource, Source, SpecError, SyntheticSource, TorchvisionSource, canonical_json,
)
from backend.specs.folders import ImageFolder, image_folder


def load_source(source: Source, size: int | None, channels: int | None) -> TaskData:
    """All classes of a source, converted to the requested size and channels."""
    if isinstance(source, DigitsSource):
        task = digits_task(source)
    elif isinstance(source, SyntheticSource):
        task = synthetic_task(source)
    else:
        return _cached(source, size, channels)
    return TaskData(convert(task.train, size, channels), convert(task.test, size, channels), task.classes)


def digits_task(source: DigitsSource) -> TaskData:
    # scikit-learn's copy of the UCI digits: 1,797 rows of 64 pixel counts (0..16) and a label. Read
    # from its file: importing scikit-learn itself costs 1.6 s.
    package = importlib.util.find_spec("sklearn")
    table = np.loadtxt(Path(package.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz",
                       delimiter=",")
    x = torch.from_numpy(np.rint(table[:, :64] * (255 / 16)).astype(np.uint8)).view(-1, 1, 8, 8)
    y = torch.from_numpy(table[:, 64].astype(np.int64))
    train, test = stratified_split(y, source.test_fraction, seed=0)
    return TaskData(Images(x[train], y[train]), Images(x[test], y[test]), tuple(map(str, range(10))))


# ---------------------------------------------------------------- torchvision

def torchvision_task(source: TorchvisionSource, size: int | None, channels: int | None) -> TaskData:
    import torchvision.datasets as tvd

    make = getattr(tvd, source.name)

    def read(train: bool) -> tuple[Images, tuple[str, ...]]:
        kwargs: dict = {"root": source.root, "download": source.download}
        if source.name in ("SVHN", "STL10"):
            kwargs["split"] = "train" if train else "test"
        else:
            kwargs["train"] = train
        if source.name == "EMNIST":
            kwargs["split"] = source.split
        try:
            ds = make(**kwargs)
        except (RuntimeError, OSError, ValueError) as exc:
            raise SpecError(f"{source.name} could not be read from {source.root!r}: {exc}",
                            field="data.source.root") from exc
        x = torch.as_tensor(np.asarray(ds.data))
        labels = ds.targets if hasattr(ds, "targets") else ds.labels
        y = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        if x.ndim == 3:  # (N, H, W) grey
            x = x.unsqueeze(1)
        elif x.shape[-1] == 3:  # (N, H, W, C) -> (N, C, H, W)
            x = x.permute(0, 3, 1, 2)
        if source.name == "EMNIST":  # stored transposed
            x = x.transpose(2, 3)
        n = int(y.max()) + 1
        classes = tuple(getattr(ds, "classes", None) or map(str, range(n)))
        return convert(Images(x.to(torch.uint8).contiguous(), y), size, channels), classes

    train, classes = read(True)
    test, _ = read(False)
    return TaskData(train, test, classes)


# ---------------------------------------------------------------- folders

def folder_task(folder: ImageFolder, source: FolderSource, size: int | None, channels: int | None) -> TaskData:
    """A checked ImageFolder (`image_folder`), decoded: its own train/test, or one tree split here."""
    if "all" in folder.splits:
        everything = _read_files(folder.files("all"), folder.root, size, channels)
        train_idx, test_idx = stratified_split(everything.y, source.test_fraction, seed=0)
        return TaskData(everything.take(train_idx), everything.take(test_idx), folder.classes)
    train = _read_files(folder.files("train"), folder.root / "train", size, channels)
    test = _read_files(folder.files("test"), folder.root / "test", size, channels)
    if channels is None and train.x.shape[1] != test.x.shape[1]:
        test = convert(test, None, 3)
        train = convert(train, None, 3)
    return TaskData(train, test, folder.classes)


def _read_files(files: list[tuple[Path, int]], root: Path, size: int | None, channels: int | None) -> Images:
    arrays, grey = [], True
    for path, _ in files:
        try:
            with Image.open(path) as im:
                grey &= im.mode in ("1", "L", "I", "I;16", "F")
                im = im.convert("L" if channels == 1 else "RGB")
                if size is not None and im.size != (size, size):
                    im = im.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
                arrays.append(np.asarray(im))
        except (OSError, UnidentifiedImageError) as exc:
            raise SpecError(f"cannot read image {str(path)!r}: {exc}", field="data.source.root") from exc
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        shown = ", ".join(f"{s[1]}x{s[0]}" for s in sorted(shapes)[:4])
        raise SpecError(f"images under {str(root)!r} differ in size ({shown}): set data.size",
                        field="data.size")
    x = torch.from_numpy(np.stack(arrays))
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    if channels is None and grey:
        x = x[:, :1]
    y = torch.tensor([label for _, label in files], dtype=torch.int64)
    return Images(x.contiguous(), y)


# ---------------------------------------------------------------- disk cache

def _cached(source: Source, size: int | None, channels: int | None) -> TaskData:
    key = {"source": json.loads(canonical_json(source)), "size": size, "channels": channels}
    folder = None
    if isinstance(source, FolderSource):
        folder = image_folder(source.root)  # a malformed folder is refused as the New study page refuses it
        key["listing"] = _listing_signature(folder)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    path = settings.data_cache_dir() / f"{digest}.safetensors"
    if path.exists():
        try:
            return _read_cache(path)
        except Exception:  # a truncated or foreign file: decode again and overwrite it
            path.unlink(missing_ok=True)
    if isinstance(source, TorchvisionSource):
        task = torchvision_task(source, size, channels)
    else:
        task = folder_task(folder, source, size, channels)
    _write_cache(path, task)
    return task


def _listing_signature(folder: ImageFolder) -> str:
    """Changes when any image of the folder is added, removed, resized or touched."""
    h = hashlib.sha256()
    for split in folder.splits:
        for path, label in folder.files(split):
            st = path.stat()
            h.update(f"{split}:{label}:{path}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _write_cache(path: Path, task: TaskData) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tensors = {"train_x": task.train.x, "train_y": task.train.y, "test_x": task.test.x, "test_y": task.test.y}
    save_file(tensors, str(tmp), metadata={"classes": json.dumps(task.classes)})
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def _read_cache(path: Path) -> TaskData:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        classes = tuple(json.loads(f.metadata()["classes"]))
    t = load_file(str(path))
    return TaskData(Images(t["train_x"], t["train_y"]), Images(t["test_x"], t["test_y"]), classes)
