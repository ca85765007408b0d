import json

from backend.checkpoints import load_checkpoint
from backend.cli import main
from tests.backend.files import write_mnist


def test_train_prints_epochs_and_saves_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "digits"
    code = main(["train", "--data", "digits", "--epochs", "2", "--set", "model.channels=[8,16]",
                 "--save", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "epoch   1/2" in printed and "epoch   2/2" in printed and "final test accuracy" in printed
    state, meta = load_checkpoint(out.with_suffix(".safetensors"))
    assert meta["spec"]["model"]["channels"] == [8, 16]
    assert meta["units"] == ["conv1", "conv2", "fc1", "classifier"]
    assert len(meta["metrics"]["history"]) == 2 and len(meta["data_fingerprint"]) == 32


def test_torchvision_data_and_shifts_from_flags(tmp_path, capsys):
    write_mnist(tmp_path)
    code = main(["train", "--data", "mnist", "--root", str(tmp_path), "--shift", "block_shuffle:block=7,seed=2",
                 "--print-spec"])
    spec = json.loads(capsys.readouterr().out)
    assert code == 0
    assert spec["data"]["source"] == {"kind": "torchvision", "name": "MNIST", "root": str(tmp_path),
                                      "download": False, "split": "balanced"}
    assert spec["data"]["shifts"] == [{"kind": "block_shuffle", "block": 7, "seed": 2}]


def test_spec_file_and_overrides(tmp_path, capsys):
    path = tmp_path / "job.yaml"
    path.write_text("data:\n  source: {kind: synthetic, n_classes: 3}\ntrain:\n  epochs: 4\n")
    assert main(["train", "--spec", str(path), "--set", "train.optimizer=adamw", "--print-spec"]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert spec["data"]["source"]["n_classes"] == 3 and spec["train"]["epochs"] == 4
    assert spec["train"]["optimizer"] == "adamw"


def test_bad_input_exits_2_naming_the_field(tmp_path, capsys):
    assert main(["train", "--shift", "block_shuffle:block=3"]) == 2
    assert "data.shifts.0.block" in capsys.readouterr().err
    assert main(["train", "--set", "train.epochs=0"]) == 2
    assert "train.epochs" in capsys.readouterr().err
    assert main(["train", "--data", "nosuchset"]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["train", "--data", "mnist"]) == 2
    assert "--root" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert main(["train", "--spec", str(tmp_path / "bad.json")]) == 2
    assert "--spec" in capsys.readouterr().err
