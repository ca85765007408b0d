"""Layer widths, depths and kernel sizes are whole numbers as typed: `true`, "8" or 8.0 is refused at parse
with the field named (lax parsing read them as 1 and 8), and a valid spec keeps its ints and its hash."""

import json

import numpy as np
import pytest

from backend.cli import main
from backend.specs import SpecError, TrainJobSpec, canonical_json, parse, spec_hash

DIGITS = {"source": {"kind": "digits"}}


@pytest.mark.parametrize("model, field", [
    ({"hidden": [True]}, "model.hidden.0"),
    ({"hidden": [8, "8"]}, "model.hidden.1"),
    ({"channels": [8.0]}, "model.channels.0"),
    ({"arch": "mlp", "hidden": [False]}, "model.hidden.0"),
    ({"arch": "vit", "dim": True, "heads": 1}, "model.dim"),
    ({"arch": "vit", "depth": True}, "model.depth"),
    ({"arch": "vit", "patch": "4"}, "model.patch"),
    ({"arch": "vit", "heads": 3.0}, "model.heads"),
])
def test_a_width_depth_or_kernel_that_is_not_a_whole_number_is_refused_naming_it(model, field):
    for given in ({"data": DIGITS, "model": model}, json.dumps({"data": DIGITS, "model": model})):
        with pytest.raises(SpecError, match="expected a whole number") as err:
            parse(TrainJobSpec, given)
        assert err.value.field == field


def test_valid_widths_keep_their_ints_and_their_hash():
    spec = parse(TrainJobSpec, {"data": DIGITS, "model": {"channels": [8, 16], "hidden": [32]}})
    assert canonical_json(spec).count('"channels":[8,16]') == 1 and '"hidden":[32]' in canonical_json(spec)
    assert spec_hash(parse(TrainJobSpec, canonical_json(spec))) == spec_hash(spec)
    # numpy's integers are whole numbers too (a width read from an array): stored as plain ints
    widths = parse(TrainJobSpec, {"data": DIGITS, "model": {"channels": [np.int64(8), 16], "hidden": [np.int32(32)]}})
    assert spec_hash(widths) == spec_hash(spec) and type(widths.model.channels[0]) is int
    vit = parse(TrainJobSpec, {"data": DIGITS, "model": {"arch": "vit", "patch": 4, "dim": 16, "depth": 2, "heads": 2}})
    assert '"depth":2' in canonical_json(vit) and '"patch":4' in canonical_json(vit)
    assert spec_hash(parse(TrainJobSpec, canonical_json(vit))) == spec_hash(vit)


@pytest.mark.parametrize("value", ["[true]", '["8"]', "[8.5]"])
def test_the_cli_refuses_them_naming_the_field(capsys, value):
    assert main(["train", "--set", f"model.hidden={value}", "--print-spec"]) == 2
    err = capsys.readouterr().err
    assert "model.hidden.0" in err and "expected a whole number" in err


@pytest.mark.parametrize("preset, path, value, field", [
    ("yosinski-digits", "n", [1, True], "n.1"),
    ("yosinski-digits-dissimilar", "groups", [[0, 1, 2, 3, "4"], [5, 6, 7, 8, 9]], "groups.0.4"),
    ("amount-digits-halves", "depths", [True], "depths.0"),
    ("amount-digits-halves", "n", [2.0], "n.0"),
    ("neyshabur-pretraining-stage", "source_epochs", ["3"], "source_epochs.0"),
    ("neyshabur-basins", "n", True, "n"),
])
def test_unit_counts_depths_epochs_and_class_ids_of_a_study_are_whole_numbers(preset, path, value, field):
    from backend.specs import PRESETS, set_field
    from backend.studies import parse_study

    spec = PRESETS[preset].spec_dict(quick=True)
    set_field(spec, path, value)
    with pytest.raises(SpecError, match="expected a whole number") as err:
        parse_study(spec)
    assert err.value.field == field


def test_class_ids_are_whole_numbers():
    with pytest.raises(SpecError, match="expected a whole number") as err:
        parse(TrainJobSpec, {"data": {**DIGITS, "classes": {"include": [0, True]}}})
    assert err.value.field == "data.classes.include.1"
