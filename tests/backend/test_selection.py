import pytest
import torch

from backend.data import load_task, select_classes
from backend.specs import ClassSelection, DataSpec, SpecError, parse


def test_yosinski_halves_are_disjoint_cover_and_depend_on_seed():
    for seed in range(4):
        a = select_classes(10, ClassSelection(half="A", seed=seed))
        b = select_classes(10, ClassSelection(half="B", seed=seed))
        assert len(a) == len(b) == 5 and sorted(a + b) == list(range(10))
    assert select_classes(10, ClassSelection(half="A", seed=0)) != select_classes(10, ClassSelection(half="A", seed=1))
    assert len(select_classes(7, ClassSelection(half="A"))) == 4  # A takes the odd one


def test_include_first_and_fraction():
    assert select_classes(10, ClassSelection(include=[7, 2, 5])) == [2, 5, 7]
    assert select_classes(10, ClassSelection(first=3)) == [0, 1, 2]
    kept = select_classes(10, ClassSelection(fraction=0.4, seed=3))
    assert len(kept) == 4 and kept == sorted(kept)
    assert select_classes(10, ClassSelection(first=6, half="B")) == sorted(
        set(range(6)) - set(select_classes(10, ClassSelection(first=6, half="A"))))


@pytest.mark.parametrize("sel, field", [
    (ClassSelection(include=[3, 12]), "data.classes.include"),
    (ClassSelection(first=11), "data.classes.first"),
    (ClassSelection(fraction=0.1), "data.classes"),
])
def test_impossible_selections_name_the_field(sel, field):
    with pytest.raises(SpecError) as info:
        select_classes(10, sel)
    assert info.value.field == field


def test_selected_classes_are_relabelled_in_order():
    full = load_task(parse(DataSpec, {"source": {"kind": "digits"}}))
    part = load_task(parse(DataSpec, {"source": {"kind": "digits"}, "classes": {"include": [8, 3]}}))
    assert part.classes == ("3", "8") and part.n_classes == 2
    assert sorted(part.train.y.unique().tolist()) == [0, 1]
    threes = full.train.x[full.train.y == 3]
    assert torch.equal(part.train.x[part.train.y == 0], threes)


def test_per_class_caps_are_seeded_subsets():
    spec = {"source": {"kind": "digits"}, "per_class": 7, "test_per_class": 2}
    a = load_task(parse(DataSpec, spec))
    b = load_task(parse(DataSpec, {**spec, "seed": 1}))
    assert torch.bincount(a.train.y).tolist() == [7] * 10
    assert torch.bincount(a.test.y).tolist() == [2] * 10
    assert not torch.equal(a.train.x, b.train.x)
    full = load_task(parse(DataSpec, {"source": {"kind": "digits"}}))
    rows = {bytes(img.numpy()) for img in full.train.x}
    assert all(bytes(img.numpy()) in rows for img in a.train.x)  # a subset, not new images
