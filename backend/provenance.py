"""What produced a result: the code version and the software it ran on, stored beside every result."""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache

from backend import settings


@lru_cache(maxsize=1)
def code_version() -> str:
    """The git commit of the code ("+dirty" when it has uncommitted changes), or "unknown"."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty=+dirty"], cwd=settings.PROJECT_ROOT,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment() -> dict[str, str]:
    import torch

    return {"code": code_version(), "torch": torch.__version__, "python": platform.python_version()}
