"""Bad input closes: layer widths, seeds and numbers at parse, class ids and batches at submit, each
refused where it was typed with the field named, instead of failing on a worker. The property tests
(tests/test_properties.py) found most of these; each is pinned here."""

import pytest

from backend.specs import PRESETS, SpecError, parse, set_field
from backend.specs.classes import check_classes, folder_class_names, kept_classes, source_classes
from backend.specs.data import TORCHVISION_SETS, ClassSelection, TorchvisionSource
from backend.studies import parse_study
from db.submit import check_study
from tests.backend.files import write_image_folder


def study(preset, **fields):
    spec = PRESETS[preset].spec_dict(quick=True)
    for path, value in fields.items():
        set_field(spec, path.replace("__", "."), value)
    return parse_study(spec)


def refusal(spec) -> SpecError:
    with pytest.raises(SpecError) as info:
        check_study(spec)
    return info.value


@pytest.mark.parametrize("path, value", [("model.hidden", [-1]), ("model.channels", [0]),
                                         ("model.channels", [16, -3]), ("model.hidden", [64, 0])])
def test_a_layer_width_that_is_not_positive_is_refused_at_parse_naming_the_field(path, value):
    spec = PRESETS["yosinski-digits"].spec_dict()
    set_field(spec, path, value)
    with pytest.raises(SpecError) as info:
        parse_study(spec)
    bad = next(i for i, v in enumerate(value) if v < 1)
    assert info.value.field == f"{path}.{bad}" and "positive whole number" in str(info.value)
    spec["model"] = {"arch": "mlp", "hidden": [0]}
    with pytest.raises(SpecError, match="positive whole number") as info:
        parse_study(spec)
    assert info.value.field == "model.hidden.0"


def test_every_torchvision_set_knows_its_classes_without_reading_anything():
    for name in TORCHVISION_SETS:
        count = source_classes(TorchvisionSource(name=name, root="/nowhere"))
        assert isinstance(count, int) and count >= 10
    assert source_classes(TorchvisionSource(name="CIFAR100", root="/nowhere")) == 100
    assert source_classes(TorchvisionSource(name="EMNIST", root="/nowhere", split="byclass")) == 62
    with pytest.raises(SpecError, match="split"):
        parse(TorchvisionSource, {"name": "EMNIST", "root": "x", "split": "bylines"})


def test_a_class_id_the_source_lacks_is_refused_at_submit_with_the_valid_ids():
    error = refusal(study("yosinski-digits", data__classes={"include": [0, 1, 2, 3, 10**12]}))
    assert error.field == "data.classes.include" and "[1000000000000]" in str(error) and "ids 0..9" in str(error)
    error = refusal(study("yosinski-mnist", data__classes={"include": [0, 1, 2, -1]}))  # MNIST: no file read
    assert error.field == "data.classes.include" and "10 classes" in str(error)
    spec = PRESETS["gap-synthetic"].spec_dict(quick=True)
    spec["targets"][2]["data"]["classes"] = {"include": [0, 10]}
    error = refusal(parse_study(spec))
    assert error.field == "targets.2.data.classes.include"
    error = refusal(study("gap-synthetic", source__classes={"first": 11}))
    assert error.field == "source.classes.first"


def test_what_a_study_derives_from_its_classes_is_checked_against_its_fields():
    error = refusal(study("yosinski-digits-dissimilar", groups=[[0, 1], [2, 10**12]]))
    assert error.field == "groups" and "[1000000000000]" in str(error)
    error = refusal(study("yosinski-digits-dissimilar", groups=[[0, 1], [2]]))
    assert error.field == "groups" and "at least 2" in str(error)
    error = refusal(study("yosinski-digits", data__classes={"first": 3}))  # halves of 2 and 1 classes
    assert error.field == "data.classes" and "half B of 3" in str(error)
    error = refusal(study("amount-digits-halves", class_fractions=[0.2, None]))  # 0.2 of the target's 5: 1
    assert error.field == "class_fractions" and "target 'digits 5-9'" in str(error)
    check_study(study("amount-digits-halves", class_fractions=[0.4, None]))  # 2 of 5
    error = refusal(study("gap-synthetic", class_fractions=[0.1]))
    assert error.field == "class_fractions" and "a share of 0.1 of 10" in str(error)
    check_study(study("yosinski-digits", data__classes={"first": 4}))


def test_a_folder_is_checked_by_its_class_folder_names(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_DATA_ROOTS", str(tmp_path))
    write_image_folder(tmp_path / "pets" / "train", {"cat": 1, "dog": 1, "elk": 1, "fox": 1})
    write_image_folder(tmp_path / "pets" / "test", {"cat": 1, "dog": 1, "elk": 1, "fox": 1})
    assert folder_class_names(str(tmp_path / "pets")) == ("cat", "dog", "elk", "fox")
    assert folder_class_names(str(tmp_path / "missing")) is None  # left to the folder check and the worker
    spec = study("yosinski-cifar10", data__source__root=str(tmp_path / "pets"), data__classes={"include": [0, 4]})
    error = refusal(spec)
    assert error.field == "data.classes.include" and "0 cat, 1 dog, 2 elk, 3 fox" in str(error)
    check_study(study("yosinski-cifar10", data__source__root=str(tmp_path / "pets")))


def test_the_engine_and_the_submit_check_keep_the_same_classes():
    from backend.data import select_classes

    for sel in (ClassSelection(include=[7, 2, 5, 9]), ClassSelection(first=7, half="B", seed=3),
                ClassSelection(half="A", fraction=0.5, seed=1), ClassSelection(fraction=0.35)):
        assert kept_classes(10, sel) == len(select_classes(10, sel))
    with pytest.raises(SpecError) as info:
        select_classes(tuple("abc"), ClassSelection(include=[3]))
    assert info.value.field == "data.classes.include" and "0 a, 1 b, 2 c" in str(info.value)


def test_a_class_check_without_jobs_checks_the_study_alone():
    check_classes(study("yosinski-digits"))
    with pytest.raises(SpecError):
        check_classes(study("yosinski-digits", data__classes={"include": [11, 12]}))


@pytest.mark.parametrize("path, value, field", [
    ("seeds", [2**64], "seeds.0"),  # torch: "Overflow when unpacking long long", on the worker
    ("seeds", [-1], "seeds.0"),  # numpy's SeedSequence refuses a negative seed (module criticality)
    ("data.seed", 2**64, "data.seed"),
    ("data.shifts", [{"kind": "noise", "std": 0.1, "seed": 2**64}], "data.shifts.0.seed"),
    ("data.source", {"kind": "synthetic", "class_seed": -5}, "data.source.class_seed"),
    ("train.weight_decay", 1e308, "train.weight_decay"),  # overflows float32 in the optimiser
    ("train.warmup_epochs", 1e308, "train.warmup_epochs"),  # inf steps of warm-up
    ("data.shifts", [{"kind": "rotation", "degrees": float("nan")}], "data.shifts.0.degrees"),
    ("data.shifts", [{"kind": "block_shuffle", "block": 3}], "data.shifts.0.block"),  # digits are 8x8 natively
])
def test_numbers_no_worker_can_use_are_refused_at_parse(path, value, field):
    spec = PRESETS["yosinski-digits"].spec_dict(quick=True)
    set_field(spec, path, value)
    with pytest.raises(SpecError) as info:
        parse_study(spec)
    assert info.value.field == field, info.value


def test_a_block_shuffle_is_checked_at_the_size_the_input_format_brings_a_task_to():
    spec = PRESETS["gap-digits-shifts"].spec_dict(quick=True)
    spec["input"] = {"size": 6}  # the target "blocks 2" still tiles 6x6; 4 would not
    parse_study(spec)
    spec["targets"][4]["data"]["shifts"][0]["block"] = 4
    with pytest.raises(SpecError) as info:
        parse_study(spec)
    assert info.value.field == "targets.4.data.shifts.0.block" and "6x6" in str(info.value)


def test_a_batch_norm_network_is_refused_batches_of_one_image_at_submit():
    error = refusal(study("yosinski-digits", train__batch_size=1, model__channels=[8, 8, 8, 8]))
    assert error.field == "train.batch_size" and "BatchNorm" in str(error)
    check_study(study("yosinski-digits", train__batch_size=1, model__norm="group"))
