import pytest
import torch


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each test writes its caches under its own temp folder, never into the project's var/."""
    monkeypatch.setenv("TRANSFERLAB_VAR", str(tmp_path / "var"))
    monkeypatch.delenv("TRANSFERLAB_DATA_CACHE", raising=False)
    torch.set_num_threads(2)
