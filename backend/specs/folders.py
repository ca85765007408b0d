"""What an ImageFolder root holds, checked without decoding a pixel (torch-free, stdlib only).

The New study page runs this where the path is typed; the folder source runs it again before it
decodes, so a malformed folder gets the same message in the browser and on a worker. Two layouts:
`root/train/<class>/...` with `root/test/<class>/...`, or one tree `root/<class>/...` that the
source splits itself. Images may sit in sub-folders of a class folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backend.specs.base import SpecError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
FIELD = "data.source.root"


@dataclass(frozen=True)
class ImageFolder:
    """A checked ImageFolder root: per split ("train" and "test", or "all" for one tree), each
    class's image files, sorted. Every class has at least one image in every split it appears in."""

    root: Path
    splits: dict[str, dict[str, tuple[Path, ...]]]

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names in label order (sorted folder names; a train/test tree takes train's)."""
        return tuple(next(iter(self.splits.values())))

    @property
    def layout(self) -> str:
        return "train/ and test/" if "train" in self.splits else "one tree, split into train and test"

    def counts(self) -> dict[str, dict[str, int]]:
        """split -> class -> number of images (a class missing from test/ counts 0 there)."""
        return {split: {name: len(files.get(name, ())) for name in self.classes}
                for split, files in self.splits.items()}

    def files(self, split: str) -> list[tuple[Path, int]]:
        """(image file, label) of a split, class by class."""
        return [(f, label) for label, name in enumerate(self.classes) for f in self.splits[split].get(name, ())]


def image_folder(root: str) -> ImageFolder:
    """The classes and images under `root`, or a SpecError saying what is wrong with it."""
    if not root.strip():
        raise SpecError("no folder given: type the path of the data set's folder", field=FIELD)
    path = Path(root).expanduser()
    try:
        if not path.is_dir():
            raise SpecError(f"{root!r} is not a readable folder", field=FIELD)
        train, test = path / "train", path / "test"
        if train.is_dir() != test.is_dir():
            present, missing = ("train", "test") if train.is_dir() else ("test", "train")
            raise SpecError(f"{root!r} has {present}/ but no {missing}/: give both, or one sub-folder per class",
                            field=FIELD)
        if train.is_dir():
            splits = {"train": _class_images(train), "test": _class_images(test)}
            extra = sorted(set(splits["test"]) - set(splits["train"]))
            if extra:
                raise SpecError(f"test/ has classes missing from train/: {extra}", field=FIELD)
        else:
            splits = {"all": _class_images(path)}
    except PermissionError as exc:
        raise SpecError(f"{root!r} is not a readable folder: {exc.strerror}", field=FIELD) from None
    folder = ImageFolder(path, splits)
    if len(folder.classes) < 2:
        raise SpecError(f"{root!r} has one class folder ({folder.classes[0]!r}); a task needs at least 2",
                        field=FIELD)
    return folder


def _class_images(folder: Path) -> dict[str, tuple[Path, ...]]:
    """Class name -> its image files under `folder/<class>/`, refusing a folder without class
    sub-folders and a class folder without images."""
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    classes = [p for p in entries if p.is_dir()]
    if not classes:
        loose = sum(p.suffix.lower() in IMAGE_EXTENSIONS for p in entries)
        found = f"holds {loose} image(s) directly" if loose else "has no class sub-folders"
        raise SpecError(f"{str(folder)!r} {found}: put each class's images in a sub-folder named after "
                        "the class (<root>/<class>/<image>)", field=FIELD)
    out = {}
    for cls in classes:
        files = tuple(sorted(f for f in cls.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS))
        if not files:
            raise SpecError(f"class folder {str(cls)!r} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})",
                            field=FIELD)
        out[cls.name] = files
    return out
