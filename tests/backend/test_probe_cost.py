"""What a study's sharpness costs against its training, from the spec alone (torch-free), and the rule
that turns a preset's sharpness on by it."""

import pytest

from backend.specs import PRESETS, DataSpec, SharpnessSettings
from backend.specs.memory import training_images
from backend.specs.probes import SHARPNESS_LADDER
from backend.studies import expand, fitting_sharpness, measures_sharpness, parse_study
from backend.studies.plan import HVP_COST, SHARPNESS_BUDGET, sharpness_cost


def test_training_images_from_the_spec_alone():
    digits = DataSpec(source={"kind": "digits"})
    assert training_images(digits) == round(1797 * 0.8)
    assert training_images(DataSpec(source={"kind": "digits"}, classes={"half": "A"})) == round(5 * 179.7 * 0.8)
    mnist = {"kind": "torchvision", "name": "MNIST", "root": "."}
    assert training_images(DataSpec(source=mnist)) == 60_000
    assert training_images(DataSpec(source=mnist, per_class=100, classes={"include": [0, 1, 2]})) == 300
    assert training_images(DataSpec(source={"kind": "synthetic", "n_classes": 4, "train_per_class": 10})) == 40
    folder = {"kind": "folder", "root": "/nonexistent/folder"}
    assert training_images(DataSpec(source=folder)) is None  # its files are not counted here


def test_products_a_probe_is_expected_to_spend():
    s = SharpnessSettings(trace_samples=20, density=False, scopes=["all"])
    assert s.products() == 8 + 20  # Lanczos settles a top eigenvalue in a few products; the cap is 100
    assert SharpnessSettings(trace_samples=20, density=True, density_runs=2, density_iterations=10).products(3) \
        == 3 * (8 + 20 + 2 * 10)
    assert SharpnessSettings(max_iterations=5, top_k=2, trace_samples=3, density=False).products() == 5 + 3
    assert SharpnessSettings(eig_method="power", top_k=2, trace_samples=3, density=False).products() == 2 * 20 + 3


def plan_of(name: str, sharpness: dict | None):
    spec = PRESETS[name].spec_dict(quick=True)
    spec["probes"] = {**spec.get("probes", {}), "sharpness": sharpness}
    return expand(parse_study(spec))


def test_the_estimate_counts_products_images_and_scopes():
    whole = {"images": 64, "trace_samples": 12, "density": False, "scopes": ["all"]}
    cost = sharpness_cost(plan_of("yosinski-digits", whole))
    networks = [j for j in plan_of("yosinski-digits", whole) if j.kind in ("train", "transfer")]
    assert cost.training == sum(j.spec.train.epochs * 719 for j in networks)
    assert cost.sharpness == pytest.approx(HVP_COST * len(networks) * (8 + 12) * 64)
    assert cost.ratio == pytest.approx(cost.sharpness / cost.training)
    assert sharpness_cost(plan_of("yosinski-digits", {**whole, "images": 128})).ratio == pytest.approx(2 * cost.ratio)
    # every scope: three on a transfer, two on a base network (nothing transferred at n = 0)
    split = sharpness_cost(plan_of("yosinski-digits", {**whole, "scopes": ["all", "transferred", "new"]}))
    assert split.sharpness == pytest.approx(HVP_COST * (2 * 2 + 25 * 3) * 20 * 64)
    # no more probe images than the task has: 25 images per class, 5 classes
    poor = sharpness_cost(plan_of("yosinski-digits-poor", {**whole, "images": 512}))
    assert poor.sharpness == pytest.approx(HVP_COST * len(networks) * 20 * 125)
    assert sharpness_cost(plan_of("yosinski-digits", None)).ratio == 0.0
    assert "sharpness adds about" in cost.text()


def test_the_estimate_is_none_where_the_training_images_are_unknown():
    plan = plan_of("amount-cifar10-halves", SHARPNESS_LADDER[-1])  # a folder without per_class
    assert sharpness_cost(plan).ratio is None and "not estimated" in sharpness_cost(plan).text()
    assert fitting_sharpness(PRESETS["amount-cifar10-halves"].spec_dict(quick=True)) is None


def test_the_richest_settings_within_the_budget_are_chosen():
    spec = PRESETS["yosinski-digits"].spec_dict(quick=True)
    ratios = [sharpness_cost(plan_of("yosinski-digits", rung)).ratio for rung in SHARPNESS_LADDER]
    assert ratios == sorted(ratios, reverse=True)  # richest first
    assert fitting_sharpness(spec) == SHARPNESS_LADDER[0] and ratios[0] <= SHARPNESS_BUDGET
    assert fitting_sharpness(spec, budget=(ratios[0] + ratios[1]) / 2) == SHARPNESS_LADDER[1]
    assert fitting_sharpness(spec, budget=ratios[-1] / 2) is None
    assert fitting_sharpness(PRESETS["neyshabur-basins"].spec_dict(quick=True)) is None  # no sharpness probe


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_a_preset_s_sharpness_is_on_where_its_quick_estimate_is_within_the_budget(name):
    """On, at the richest settings within the budget at the quick size, or off where none is; the full
    size takes the same settings."""
    preset = PRESETS[name]
    if not measures_sharpness(preset.study):
        assert "sharpness" not in preset.spec_dict().get("probes", {})
        return
    quick, full = (parse_study(preset.spec_dict(quick=q)) for q in (True, False))
    assert preset.sharpness_by_cost  # no preset sets its sharpness by hand
    assert quick.probes.sharpness == full.probes.sharpness
    if quick.probes.sharpness is None:
        assert all((sharpness_cost(plan_of(name, rung)).ratio or float("inf")) > SHARPNESS_BUDGET
                   for rung in SHARPNESS_LADDER)
    else:
        assert sharpness_cost(expand(quick)).ratio <= SHARPNESS_BUDGET


def test_the_default_preset_measures_the_split_and_the_density_within_the_budget():
    """yosinski-digits at its full size: every scope (all, transferred, new) and the spectral density."""
    study = parse_study(PRESETS["yosinski-digits"].spec_dict())
    s = study.probes.sharpness
    assert set(s.scopes) == {"all", "transferred", "new"} and s.density
    assert sharpness_cost(expand(study)).ratio <= SHARPNESS_BUDGET
