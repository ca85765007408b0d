"""Where things live on disk, from the environment with project-local defaults."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def var_dir() -> Path:
    """Everything the app writes: database, artifacts, caches (never committed)."""
    return Path(os.environ.get("TRANSFERLAB_VAR", PROJECT_ROOT / "var"))


def data_cache_dir() -> Path:
    """Decoded data sets as safetensors, so a folder of PNGs is decoded once."""
    return Path(os.environ.get("TRANSFERLAB_DATA_CACHE", var_dir() / "cache" / "data"))


def artifacts_dir() -> Path:
    """Checkpoints and epoch states the workers write; shared by every worker of a database."""
    return Path(os.environ.get("TRANSFERLAB_ARTIFACTS", var_dir() / "artifacts"))
