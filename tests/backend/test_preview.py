import numpy as np
import pytest
import torch

from backend.data import load_task
from backend.data.preview import GAP, TILE_MIN, data_preview
from backend.specs import DataSpec, SpecError, YosinskiSpec, parse
from backend.specs.preview import DataPreviewSpec
from backend.studies import expand

SYNTHETIC = {"source": {"kind": "synthetic", "n_classes": 5, "train_per_class": 6, "test_per_class": 3, "size": 8}}


def preview(data, **extra):
    return data_preview(parse(DataPreviewSpec, {"data": data, **extra}))


@pytest.mark.parametrize("data", [SYNTHETIC, {"source": {"kind": "digits"}, "classes": {"fraction": 0.5}}])
def test_counts_classes_and_format_match_the_task(data):
    task = load_task(parse(DataSpec, data))
    p = preview(data)
    assert p.classes == task.classes and p.image_shape == task.image_shape
    assert p.counts["train"] == torch.bincount(task.train.y).tolist()
    assert sum(p.counts["test"]) == len(task.test) and p.fingerprint == task.fingerprint


def test_sample_grid_has_a_row_per_class_and_shows_the_training_images():
    p = preview(SYNTHETIC, per_class_samples=3)
    tile = 4 * 8  # 8x8 images are upscaled 4x (nearest) to reach TILE_MIN
    assert tile >= TILE_MIN and p.samples.dtype == np.uint8
    assert p.samples.shape == (5 * (tile + GAP) - GAP, 3 * (tile + GAP) - GAP, 1)
    task = load_task(parse(DataSpec, SYNTHETIC))
    first_of_class_2 = task.train.x[task.train.y == 2][0, 0].numpy()
    row = 2 * (tile + GAP)
    assert np.array_equal(p.samples[row:row + tile:4, :tile:4, 0], first_of_class_2)


def test_halves_are_those_the_yosinski_study_trains_on():
    data = {"source": {"kind": "digits"}}
    p = preview(data, seeds=[0, 3])
    study = parse(YosinskiSpec, {"data": data, "seeds": [0, 3], "treatments": ["AnB"], "n": [1],
                                 "probes": {"sharpness": None, "similarity": None}})
    for job in expand(study):
        if job.labels["treatment"] in ("baseA", "baseB"):
            half = job.labels["treatment"][-1]
            assert p.halves[job.labels["seed"]][half] == list(load_task(job.spec.data).classes)
    assert p.halves[0]["A"] != p.halves[3]["A"]
    assert sorted(p.halves[0]["A"] + p.halves[0]["B"]) == [str(c) for c in range(10)]


def test_a_half_too_small_is_reported_per_seed_not_raised():
    three = {"source": {**SYNTHETIC["source"], "n_classes": 3}}
    assert "at least 2" in preview(three, seeds=[0]).halves[0]["error"]


def test_the_spec_bounds_the_grid():
    with pytest.raises(SpecError):
        parse(DataPreviewSpec, {"data": SYNTHETIC, "per_class_samples": 0})
