import json

import pytest

from backend.specs import (
    BlockShuffle, DataSpec, DigitsSource, SpecError, TrainJobSpec, canonical_json, parse, spec_hash,
)


def digits(**extra):
    return {"source": {"kind": "digits"}, **extra}


@pytest.mark.parametrize("bad, field", [
    (digits(per_class=0), "data.per_class"),
    (digits(colour=3), "data.colour"),
    ({"source": {"kind": "torchvision", "name": "MNST", "root": "x"}}, "data.source.name"),
    ({"source": {"kind": "torchvision", "name": "MNIST"}}, "data.source.root"),
    ({"source": {"kind": "imagenet"}}, "data.source"),
    (digits(size=8, shifts=[{"kind": "block_shuffle", "block": 3}]), "data.shifts.0.block"),
    (digits(shifts=[{"kind": "noise", "std": -1}]), "data.shifts.0.std"),
    (digits(classes={"include": [1, 1]}), "data.classes.include"),
    (digits(classes={"half": "C"}), "data.classes.half"),
])
def test_bad_data_specs_name_the_field(bad, field):
    with pytest.raises(SpecError) as info:
        parse(DataSpec, bad, prefix="data")
    assert info.value.field == field
    assert str(info.value).startswith(field)


def test_bad_job_spec_names_nested_field():
    with pytest.raises(SpecError) as info:
        parse(TrainJobSpec, {"data": digits(), "train": {"epochs": 0}})
    assert info.value.field == "train.epochs"
    with pytest.raises(SpecError) as info:
        parse(TrainJobSpec, {"data": digits(), "model": {"arch": "vgg"}})
    assert info.value.field == "model"


def test_malformed_json_is_a_spec_error():
    with pytest.raises(SpecError, match="Invalid JSON"):
        parse(TrainJobSpec, '{"data": ')


def test_several_errors_are_all_reported():
    with pytest.raises(SpecError) as info:
        parse(TrainJobSpec, {"data": digits(per_class=0), "train": {"epochs": 0}})
    assert "data.per_class" in str(info.value) and "train.epochs" in str(info.value)


def test_canonical_json_round_trips_and_fills_defaults():
    job = parse(TrainJobSpec, {"data": digits()})
    text = canonical_json(job)
    assert parse(TrainJobSpec, text) == job
    assert json.loads(text)["train"]["epochs"] == job.train.epochs  # defaults are explicit


def test_hash_depends_on_content_not_on_spelling():
    a = parse(TrainJobSpec, {"data": digits(), "train": {"lr": 0.05}})
    b = parse(TrainJobSpec, json.dumps({"train": {"lr": 0.050}, "data": {"source": {"kind": "digits"}}}))
    c = parse(TrainJobSpec, {"data": digits(), "train": {"lr": 0.1}})
    assert spec_hash(a) == spec_hash(b) != spec_hash(c)


def test_specs_are_immutable():
    spec = DataSpec(source=DigitsSource(), shifts=[BlockShuffle(block=2)])
    with pytest.raises(Exception):
        spec.size = 4  # type: ignore[misc]


def test_specs_module_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, backend.specs; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("source", [{"kind": "folder", "root": ""}, {"kind": "folder", "root": "  "},
                                    {"kind": "torchvision", "name": "MNIST", "root": ""}])
def test_an_empty_root_is_not_the_working_directory(source):
    with pytest.raises(SpecError) as info:
        parse(DataSpec, {"source": source})
    assert info.value.field == "source.root" and "no folder given" in str(info.value)


def test_a_field_added_late_leaves_stored_hashes_alone():
    from backend.specs import TrainSpec

    plain = TrainSpec()
    assert "stop_after" not in canonical_json(plain)  # at its default: the hash of every stored job holds
    stopped = TrainSpec(epochs=8, stop_after=2)
    assert '"stop_after":2' in canonical_json(stopped) and spec_hash(stopped) != spec_hash(TrainSpec(epochs=8))
    assert parse(TrainSpec, canonical_json(stopped)) == stopped and parse(TrainSpec, canonical_json(plain)) == plain
    with pytest.raises(SpecError, match="beyond") as err:
        parse(TrainSpec, {"epochs": 3, "stop_after": 4})
    assert err.value.field == "stop_after"
