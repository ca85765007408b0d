"""Data roots: a folder a user types (an ImageFolder root, a torchvision root, a weights file) must lie inside the
folders the deployment lets users read (`TRANSFERLAB_DATA_ROOTS`), after symlinks are resolved.

Checked where a spec comes in (the New study page, the CLI, the submit path) and again by the worker
before it runs a job, so a spec queued some other way cannot read elsewhere on the server either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend import settings
from backend.specs.base import SpecError, spec_parts
from backend.specs.data import FolderSource, TorchvisionSource
from backend.specs.pretrained import NetworkFile


def check_data_roots(spec: Any) -> None:
    """A SpecError naming the field and the allowed roots for the first folder or weights file outside them."""
    for field, part in spec_parts(spec, (FolderSource, TorchvisionSource, NetworkFile)):
        if isinstance(part, NetworkFile):
            check_folder(part.path, f"{field}.path")
        else:
            check_folder(part.root, f"{field}.root")


def check_folder(typed: str, field: str) -> None:
    """A SpecError unless the folder `typed` resolves inside one of the data roots."""
    roots = settings.data_roots()
    path = Path(typed).expanduser().resolve()  # symlinks followed: a link inside a root may point out
    if not any(path == root or root in path.parents for root in roots):
        allowed = ", ".join(str(r) for r in roots) or "none"
        raise SpecError(f"{typed!r} is outside the folders data may be read from ({allowed}); an admin adds "
                        "folders with TRANSFERLAB_DATA_ROOTS", field=field)
