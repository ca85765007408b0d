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


def test_train_refuses_what_submit_refuses(capsys):
    assert main(["train", "--set", "model.hidden=[-1]"]) == 2
    assert "model.hidden.0" in capsys.readouterr().err
    assert main(["train", "--set", "data.classes.include=[0,1000000000000]"]) == 2
    err = capsys.readouterr().err
    assert "data.classes.include" in err and "ids 0..9" in err
    assert main(["train", "--set", "model.channels=[1000000000]"]) == 2  # the memory check, before torch
    assert "would need about" in capsys.readouterr().err


def test_a_sweep_of_a_spec_file_is_named_by_the_study_or_by_name(tmp_path, capsys):
    from backend.specs import PRESETS

    spec = PRESETS["amount-digits-halves"].spec_dict(quick=True)
    spec.update(seeds=[0], amounts=[None], n=[1], treatments=["AnB"], train={"epochs": 1, "batch_size": 64},
                model={"channels": [4], "hidden": []}, probes={"gap": None, "chen_t": False, "scores": None})
    path = tmp_path / "cross.json"
    path.write_text(json.dumps(spec))
    assert main(["sweep", "--spec", str(path), "--out", str(tmp_path / "a")]) == 0
    assert "cross_dataset: 3 jobs" in capsys.readouterr().out
    assert [p.name.startswith("cross_dataset-") for p in (tmp_path / "a").iterdir()] == [True, True]
    assert main(["sweep", "--spec", str(path), "--name", "halves", "--out", str(tmp_path / "b"), "--print-spec"]) == 0
    capsys.readouterr()
    assert main(["sweep", "--spec", str(path), "--name", "halves", "--out", str(tmp_path / "b")]) == 0
    assert "halves: 3 jobs" in capsys.readouterr().out
    assert sorted(p.suffix for p in (tmp_path / "b").glob("halves-*")) == [".csv", ".json"]


def test_a_submitted_spec_file_is_named_by_its_study_and_claims_no_preset(tmp_path, monkeypatch, capsys):
    from backend.specs import PRESETS
    from db.session import get_engine
    from db.studies import Studies

    monkeypatch.setenv("TRANSFERLAB_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    path = tmp_path / "cross.json"
    path.write_text(json.dumps(PRESETS["gap-synthetic"].spec_dict(quick=True)))
    assert main(["submit", "--spec", str(path)]) == 0
    path.write_text(json.dumps(PRESETS["yosinski-digits"].spec_dict()))  # exactly a preset's spec: that preset
    assert main(["submit", "--spec", str(path), "--name", "mine"]) == 0
    listed = {s.name: s.origin for s in Studies(get_engine(f"sqlite:///{tmp_path / 'store.db'}")).listing()}
    assert listed == {"cross_dataset": "custom", "mine": "yosinski-digits"}, listed
