import os
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _isolated(tmp_path, tmp_path_factory, monkeypatch):
    """Each test writes its caches under its own temp folder, never into the project's var/, reads
    data from the temp folders (and ../shared/datasets), and ignores any transferlab.toml."""
    monkeypatch.setenv("TRANSFERLAB_VAR", str(tmp_path / "var"))
    monkeypatch.setenv("TRANSFERLAB_CONFIG", str(tmp_path / "no-settings.toml"))
    monkeypatch.setenv("TRANSFERLAB_DATA_ROOTS", os.pathsep.join(
        [str(tmp_path_factory.getbasetemp()), str(Path(__file__).resolve().parents[2] / "shared" / "datasets")]))
    for name in ("DATA_CACHE", "ARTIFACTS", "DATABASE_URL", "EMBEDDED_WORKER", "DEVICE"):
        monkeypatch.delenv(f"TRANSFERLAB_{name}", raising=False)
    torch.set_num_threads(2)
