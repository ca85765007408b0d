"""The memory preflight names the part to shrink, and reads the worker_memory_gb setting first on every device."""

import pytest
import torch

from backend.cli import main
from backend.specs import SpecError, TrainJobSpec, parse
from backend.specs.memory import check_fits

DIGITS = {"source": {"kind": "digits"}}


def test_an_oversized_evaluation_batch_is_named_as_such(monkeypatch, capsys):
    monkeypatch.setenv("TRANSFERLAB_WORKER_MEMORY_GB", "16")
    with pytest.raises(SpecError, match="shrink the network or the evaluation batch") as err:
        check_fits(parse(TrainJobSpec, {"data": DIGITS, "train": {"eval_batch_size": 10**12}}))
    assert err.value.field == "train.eval_batch_size" and "per evaluation batch" in str(err.value)
    with pytest.raises(SpecError, match="shrink the network or the batch") as err:  # the training batch: as before
        check_fits(parse(TrainJobSpec, {"data": DIGITS, "train": {"batch_size": 10**12, "eval_batch_size": 64}}))
    assert err.value.field == "train.batch_size"
    assert main(["train", "--set", "train.eval_batch_size=1000000000000"]) == 2
    assert "train.eval_batch_size: this network would need about" in capsys.readouterr().err


def test_the_worker_memory_setting_is_a_gpu_s_limit_too(monkeypatch):
    from backend.gpus import device_memory

    monkeypatch.setenv("TRANSFERLAB_WORKER_MEMORY_GB", "3")
    assert device_memory(torch.device("cpu")) == 3 * 2**30
    # A GPU's own memory is read only when the setting is not given: here, on a machine without one, too.
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: pytest.fail("read the GPU's memory"))
    assert device_memory(torch.device("cuda:0")) == 3 * 2**30
    assert device_memory("cuda:1") == 3 * 2**30
