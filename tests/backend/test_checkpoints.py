import pytest
import torch

from backend.checkpoints import load_checkpoint, load_weights, save_checkpoint
from backend.models import build_model
from backend.specs import ConvNetSpec, MLPSpec, SpecError


def net(spec=ConvNetSpec(channels=[4, 8], hidden=[8]), seed=0):
    torch.manual_seed(seed)
    return build_model(spec, (1, 8, 8), 3)


def test_round_trip_restores_weights_and_sidecar(tmp_path):
    a = net()
    path = save_checkpoint(tmp_path / "ck" / "base", a, {"spec": {"x": 1}, "metrics": {"acc": 0.5}})
    assert path.suffix == ".safetensors" and path.with_suffix(".json").exists()
    state, meta = load_checkpoint(path)
    assert meta["spec"] == {"x": 1} and meta["format"].startswith("transferlab.checkpoint")
    b = net(seed=1)
    load_weights(b, state)
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(a.eval()(x), b.eval()(x))
    assert not list(tmp_path.rglob("*.tmp"))  # temp files were renamed into place


def test_compiled_or_wrapped_modules_save_bare_keys(tmp_path):
    a = net()
    wrapped = torch.nn.DataParallel(a)
    path = save_checkpoint(tmp_path / "w", wrapped, {})
    state, _ = load_checkpoint(path)
    assert set(state) == set(a.state_dict())


def test_checkpoint_of_another_architecture_is_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "mlp", net(MLPSpec(hidden=[8])), {})
    state, _ = load_checkpoint(path)
    with pytest.raises(SpecError) as info:
        load_weights(net(), state)
    assert info.value.field == "checkpoint" and "does not fit this architecture" in str(info.value)
    wider = build_model(ConvNetSpec(channels=[4, 16], hidden=[8]), (1, 8, 8), 3)
    with pytest.raises(SpecError, match="shape mismatch"):
        load_weights(wider, load_checkpoint(save_checkpoint(tmp_path / "c", net(), {}))[0])


def test_corrupt_or_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing.safetensors")
    path = save_checkpoint(tmp_path / "a", net(), {})
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(SpecError, match="not a readable safetensors"):
        load_checkpoint(path)
    pickled = tmp_path / "p.safetensors"
    torch.save(net().state_dict(), pickled)  # a pickle under the right name is still refused
    with pytest.raises(SpecError):
        load_checkpoint(pickled)


def test_corrupt_sidecar_is_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "a", net(), {})
    path.with_suffix(".json").write_text("{ nope")
    with pytest.raises(SpecError, match="sidecar"):
        load_checkpoint(path)
