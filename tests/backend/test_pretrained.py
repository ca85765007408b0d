"""Importing pretrained networks: real file formats written here, loaded bit for bit or refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from backend.checkpoints import save_checkpoint
from backend.models import build_model
from backend.pretrained import import_network, run_import
from backend.specs import SpecError, parse
from backend.specs.pretrained import RESNET_UNITS, NetworkFile, pin_network

RESNET = {"arch": "resnet18", "small_input": False}


def _torchvision_resnet(classes: int = 10) -> dict[str, torch.Tensor]:
    torch.manual_seed(3)
    return torchvision.models.resnet18(num_classes=classes).state_dict()


def _in_units(key: str) -> str:
    prefix = next(p for p in RESNET_UNITS if key.startswith(p))
    return RESNET_UNITS[prefix] + key[len(prefix):]


def _assert_same(imported, original: dict[str, torch.Tensor]) -> None:
    state = imported.model.state_dict()
    assert len(state) == len(original)
    for key, value in original.items():
        got = state[_in_units(key)]
        assert got.dtype == value.dtype and torch.equal(got, value), key


def _pinned(path: Path, **fields) -> NetworkFile:
    return pin_network(parse(NetworkFile, {"path": str(path), **fields}))


def test_torchvision_state_dict_loads_into_named_units_bit_for_bit(tmp_path):
    original = _torchvision_resnet()
    path = tmp_path / "resnet18.pth"
    torch.save(original, path)  # torchvision's own format: a state_dict saved by torch.save
    spec = _pinned(path, format="torchvision", model=RESNET)
    assert spec.input.size == 224 and spec.input.channels == 3  # ImageNet's, as torchvision's weights say
    imported = import_network(spec)
    _assert_same(imported, original)
    assert imported.n_classes == 10 and imported.image_shape == (3, 224, 224)
    assert imported.normalization.mean == (0.485, 0.456, 0.406)


@pytest.mark.parametrize("container", ["wrapped", "safetensors"])
def test_timm_checkpoint_loads_bit_for_bit(tmp_path, container):
    original = _torchvision_resnet(classes=5)  # timm's ResNets name their tensors as torchvision's do
    if container == "wrapped":  # timm's train.py: {"state_dict": ..., "epoch": ..., "arch": ...}, DDP prefixes
        path = tmp_path / "checkpoint.pth.tar"
        torch.save({"epoch": 7, "arch": "resnet18", "state_dict": {f"module.{k}": v for k, v in original.items()}},
                   path)
    else:  # the hub's model.safetensors
        path = tmp_path / "model.safetensors"
        save_file({k: v.contiguous() for k, v in original.items()}, str(path))
    spec = _pinned(path, format="timm", model=RESNET)
    assert spec.input.size == 224  # no config beside it: timm's default, ImageNet's
    imported = import_network(spec)
    _assert_same(imported, original)
    assert imported.n_classes == 5


def test_a_timm_config_beside_the_weights_gives_the_input(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in _torchvision_resnet().items()}, str(path))
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "resnet18", "pretrained_cfg": {
        "input_size": [3, 160, 160], "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "classifier": "fc"}}))
    spec = _pinned(path, format="timm", model=RESNET)
    assert (spec.input.size, spec.input.mean) == (160, (0.5, 0.5, 0.5))


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_pickled_code_object_is_refused_and_never_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": _Payload()}, path)
    spec = _pinned(path, format="torchvision", model=RESNET)
    with pytest.raises(SpecError, match="holds pickled Python objects or code, not only tensors") as refused:
        import_network(spec)
    assert not (tmp_path / "pwned").exists()
    message = str(refused.value)
    assert "never unpickles" in message and "safetensors" in message
    assert "system" in message  # the object it met is named (posix.system, nt.system)
    assert "weights_only" not in message  # torch's hint to load it anyway is not passed on


def test_a_file_changed_after_submit_is_refused(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(_torchvision_resnet(), path)
    spec = _pinned(path, format="torchvision", model=RESNET)
    torch.save(_torchvision_resnet(classes=3), path)
    with pytest.raises(SpecError, match="has changed since the study recorded it"):
        import_network(spec)
    with pytest.raises(SpecError, match="has changed since it was recorded"):
        pin_network(spec)  # a digest given at submit must match too


def test_a_file_outside_the_data_roots_is_refused(tmp_path, monkeypatch):
    inside, outside = tmp_path / "roots", tmp_path / "elsewhere"
    inside.mkdir(), outside.mkdir()
    torch.save(_torchvision_resnet(), outside / "resnet18.pth")
    monkeypatch.setenv("TRANSFERLAB_DATA_ROOTS", str(inside))
    with pytest.raises(SpecError, match="outside the folders data may be read from"):
        _pinned(outside / "resnet18.pth", format="torchvision", model=RESNET)


def test_a_lab_checkpoint_brings_its_own_input_and_a_drawn_theta_r(tmp_path):
    model_spec = {"arch": "convnet", "channels": [4, 8], "hidden": [16]}
    torch.manual_seed(0)
    net = build_model(parse(NetworkFile, {"path": "x", "model": model_spec}).model, (1, 12, 12), 4)
    path = save_checkpoint(tmp_path / "model", net, {"input_shape": [1, 12, 12],
                                                     "normalization": {"mean": [0.2], "std": [0.3]}})
    spec = _pinned(path, model=model_spec, init_seed=5)
    assert (spec.input.size, spec.input.channels, spec.input.std) == (12, 1, (0.3,))
    output = run_import(spec, {}, torch.device("cpu"), lambda *_: None)
    imported = output.network
    for key, value in net.state_dict().items():
        assert torch.equal(imported.model.state_dict()[key], value)
    assert imported.init_drawn and "drawn afresh" in output.tables["theta_r"]
    assert not torch.equal(imported.init["body.conv1.0.weight"], net.state_dict()["body.conv1.0.weight"])
    assert output.scalars["parameters"] == sum(p.numel() for p in net.parameters())


def test_a_file_of_another_architecture_names_the_mismatch(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(_torchvision_resnet(), path)
    with pytest.raises(SpecError, match="does not fit resnet18 with 224x224 grey input"):
        import_network(_pinned(path, format="torchvision", model=RESNET,
                               input={"size": 224, "channels": 1, "mean": [0.5], "std": [0.25]}))
    with pytest.raises(SpecError, match="does not say what images it takes"):
        save_file({"body.fc1.0.weight": torch.zeros(2, 2)}, str(tmp_path / "bare.safetensors"))
        _pinned(tmp_path / "bare.safetensors", model={"arch": "mlp", "hidden": [2]})


def test_torchvision_weights_are_not_downloaded_unless_the_deployment_allows_it(tmp_path, monkeypatch):
    from backend.specs import ResNetSpec

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # an empty cache
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: pytest.fail("tried to download"))
    with pytest.raises(SpecError, match="downloads are off: set TRANSFERLAB_ALLOW_DOWNLOADS=1"):
        build_model(ResNetSpec(pretrained=True, small_input=False), (3, 32, 32), 10)


def test_the_local_model_caches_are_data_roots_by_default(monkeypatch, tmp_path):
    from backend import settings

    monkeypatch.delenv("TRANSFERLAB_DATA_ROOTS")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    roots = settings.data_roots()
    assert (tmp_path / "torch" / "hub" / "checkpoints").resolve() in roots


def test_a_timm_vit_loads_bit_for_bit_and_computes_what_timm_computes(tmp_path):
    timm = pytest.importorskip("timm", reason="timm is a dev requirement (requirements-dev.txt)")
    torch.manual_seed(0)
    reference = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=7, img_size=32,
                                  patch_size=8, depth=3).eval()
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    model = {"arch": "vit", "patch": 8, "dim": 192, "depth": 3, "heads": 3}
    spec = _pinned(path, format="timm", model=model, input={"size": 32, "channels": 3, "mean": [0.5] * 3,
                                                            "std": [0.5] * 3})
    imported = import_network(spec)
    assert imported.model.unit_names == ["patch", "block1", "block2", "block3", "head"]
    ours = imported.model.state_dict()
    assert len(ours) == len(reference.state_dict())
    assert torch.equal(ours["body.block2.attn.qkv.weight"], reference.state_dict()["blocks.1.attn.qkv.weight"])
    assert torch.equal(ours["body.patch.pos_embed"], reference.state_dict()["pos_embed"])
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(imported.model.eval()(x), reference(x), atol=1e-5)


def test_a_legacy_torch_file_loads_and_garbage_is_named(tmp_path):
    original = _torchvision_resnet()
    path = tmp_path / "legacy.pth"
    torch.save(original, path, _use_new_zipfile_serialization=False)  # torch before 1.6 wrote these
    _assert_same(import_network(_pinned(path, format="torchvision", model=RESNET)), original)
    (tmp_path / "junk.pth").write_bytes(b"not weights at all")
    with pytest.raises(SpecError, match="neither a safetensors file nor a torch file"):
        import_network(_pinned(tmp_path / "junk.pth", format="torchvision", model=RESNET))
