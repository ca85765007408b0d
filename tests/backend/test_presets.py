"""The presets that leave room for the effects: CIFAR-10 halves, animals vs vehicles, and the
data-poor MNIST and digits sweeps. Every folder here is a tiny fake ImageFolder; none needs ../shared."""

import pytest

from backend.cli import main
from backend.specs import PRESETS, SpecError
from backend.specs.folders import image_folder
from backend.specs.presets import CIFAR10_CLASSES, check_preset_folder
from backend.studies import expand, parse_study
from backend.studies.plan import SHARPNESS_BUDGET, sharpness_cost
from tests.backend.files import write_image_folder

HEADROOM = ["yosinski-cifar10", "yosinski-cifar10-dissimilar", "yosinski-digits-poor", "yosinski-mnist-poor"]
ANIMALS = {"bird", "cat", "deer", "dog", "frog", "horse"}
VEHICLES = {"airplane", "automobile", "ship", "truck"}


def fake_folder(root, classes=CIFAR10_CLASSES):
    """root/train/<class>/ and root/test/<class>/, two images each."""
    for split in ("train", "test"):
        write_image_folder(root / split, {name: 2 for name in classes}, size=(8, 8))
    return root


@pytest.mark.parametrize("name", HEADROOM)
def test_headroom_presets_validate_and_their_quick_size_expands(name):
    preset = PRESETS[name]
    full, quick = (parse_study(preset.spec_dict(quick=q)) for q in (False, True))
    assert full.study == quick.study == preset.study == "yosinski" and preset.asks and preset.figure
    assert quick.seeds == [0] and len(full.seeds) >= 3
    # sharpness by the cost rule: none, or settings whose cost at the quick size is within the budget
    assert quick.probes.sharpness == full.probes.sharpness
    plan = expand(quick)
    assert plan and len({job.key for job in plan}) == len(plan)
    assert quick.probes.sharpness is None or sharpness_cost(plan).ratio <= SHARPNESS_BUDGET
    assert len(plan) < len(expand(full))


@pytest.mark.parametrize("name", ["yosinski-digits-poor", "yosinski-mnist-poor"])
def test_data_poor_presets_keep_20_to_50_images_per_class(name):
    for quick in (False, True):
        assert 20 <= parse_study(PRESETS[name].spec_dict(quick=quick)).data.per_class <= 50


def test_dissimilar_cifar_split_is_the_random_one_but_for_its_groups():
    similar, dissimilar = (PRESETS[n].spec_dict() for n in ("yosinski-cifar10", "yosinski-cifar10-dissimilar"))
    assert dissimilar.pop("groups") and dissimilar == similar  # same data, images per class, network, training
    assert PRESETS["yosinski-cifar10"].quick == PRESETS["yosinski-cifar10-dissimilar"].quick


def test_dissimilar_groups_are_animals_against_vehicles_by_class_name(tmp_path):
    root = fake_folder(tmp_path / "cifar")
    classes = image_folder(str(root)).classes
    for quick in (False, True):
        spec = PRESETS["yosinski-cifar10-dissimilar"].spec_dict(quick=quick)
        spec["data"]["source"]["root"] = str(root)
        study = parse_study(spec)
        a, b = ({classes[i] for i in group} for group in study.groups)
        assert (a, b) == (ANIMALS, VEHICLES)
        check_preset_folder("yosinski-cifar10-dissimilar", study)  # the folder it was written for
    description = PRESETS["yosinski-cifar10-dissimilar"].asks
    assert all(name in description for name in ANIMALS | VEHICLES)


def test_other_class_folders_are_refused_naming_the_groups(tmp_path):
    spec = PRESETS["yosinski-cifar10-dissimilar"].spec_dict(quick=True)
    spec["data"]["source"]["root"] = str(fake_folder(tmp_path / "extra", CIFAR10_CLASSES + ("aardvark",)))
    with pytest.raises(SpecError) as info:  # "aardvark" sorts first: every id moves by one
        check_preset_folder("yosinski-cifar10-dissimilar", parse_study(spec))
    assert info.value.field == "groups" and "groups=[[3, 4, 5, 6, 7, 8], [1, 2, 9, 10]]" in str(info.value)
    spec["data"]["source"]["root"] = str(fake_folder(tmp_path / "digits", [str(d) for d in range(10)]))
    with pytest.raises(SpecError) as info:
        check_preset_folder("yosinski-cifar10-dissimilar", parse_study(spec))
    assert info.value.field == "groups" and "no class folder" in str(info.value)
    spec["groups"] = [[0, 1], [2, 3]]  # groups of the user's own are theirs to choose
    check_preset_folder("yosinski-cifar10-dissimilar", parse_study(spec))


def test_a_missing_folder_is_refused_naming_the_root(tmp_path):
    for name in ("yosinski-cifar10", "yosinski-cifar10-dissimilar"):
        spec = PRESETS[name].spec_dict(quick=True)
        spec["data"]["source"]["root"] = str(tmp_path / "absent")
        with pytest.raises(SpecError) as info:
            check_preset_folder(name, parse_study(spec))
        assert info.value.field == "data.source.root"


def test_cli_root_binds_a_folder_preset_and_refuses_a_mismatched_folder(tmp_path, capsys):
    root = fake_folder(tmp_path / "mine")
    assert main(["sweep", "--preset", "yosinski-cifar10", "--quick", "--root", str(root), "--print-spec"]) == 0
    assert f'"root": "{root}"' in capsys.readouterr().out
    other = fake_folder(tmp_path / "other", ["a", "b", "c"])
    assert main(["sweep", "--preset", "yosinski-cifar10-dissimilar", "--quick", "--root", str(other)]) == 2
    assert "error: groups:" in capsys.readouterr().err
    assert main(["submit", "--preset", "yosinski-cifar10", "--root", str(tmp_path / "absent")]) == 2
    assert "error: data.source.root:" in capsys.readouterr().err
