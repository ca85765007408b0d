import copy

import pandas as pd

from ui.charts import COLOURS
from ui.compare import compare_figure, compare_table, highlight_differences, spec_difference

SPEC = {"study": "yosinski", "seeds": [0, 1], "treatments": ["AnB", "random"], "n": None,
        "train": {"epochs": 2, "lr": 0.05}, "model": {"arch": "convnet", "channels": [4, 8]},
        "data": {"source": {"kind": "synthetic", "gap": 0.0}, "shifts": []}}


def test_two_specs_differing_in_seeds_and_epochs_give_exactly_those_rows():
    other = copy.deepcopy(SPEC)
    other["seeds"], other["train"]["epochs"] = [0, 1, 2], 5
    table = spec_difference({1: SPEC, 2: other})
    assert list(table.index) == ["seeds", "train.epochs"]
    assert table.loc["seeds"].tolist() == ["0,1", "0,1,2"]
    assert table.loc["train.epochs"].tolist() == ["2", "5"]


def test_identical_specs_differ_nowhere_but_every_field_can_be_shown():
    assert spec_difference({1: SPEC, 2: copy.deepcopy(SPEC)}).empty
    every = spec_difference({1: SPEC, 2: copy.deepcopy(SPEC)}, every=True)
    assert {"model.channels", "data.source.kind", "n", "data.shifts"} <= set(every.index)
    assert every.loc["model.channels"].tolist() == ["4,8", "4,8"]
    assert every.loc["n", 1] == "none" and every.loc["data.shifts", 1] == "[]"


def test_a_nested_field_missing_in_one_spec_is_blank():
    other = copy.deepcopy(SPEC)
    other["data"]["source"]["class_seed"] = 3
    table = spec_difference({1: SPEC, 2: other, 3: copy.deepcopy(SPEC)})
    assert list(table.index) == ["data.source.class_seed"]
    assert table.loc["data.source.class_seed"].tolist() == ["", "3", ""]


def test_highlighting_marks_every_cell_of_the_differing_rows_only():
    other = copy.deepcopy(SPEC)
    other["train"]["epochs"] = 5
    table = spec_difference({1: SPEC, 2: other}, every=True)
    css = highlight_differences(table)
    assert css.loc["train.epochs"].str.startswith("background-color").all()
    assert (css.drop(index="train.epochs") == "").all().all()


def summary(shift: float, treatments=("AnB", "random")) -> pd.DataFrame:
    rows = [{"treatment": "baseB", "n": 0, "mean": 90.0 + shift, "ci95": 2.0, "seeds": 2, "jobs": "1,2"}]
    for t in treatments:
        for n in (1, 2, 3):
            # random's band reaches below 0 and AnB's above 100: both must be clipped
            mean = 99.5 if t == "AnB" else 1.0
            rows.append({"treatment": t, "n": n, "mean": mean - shift, "ci95": 3.0, "seeds": 2, "jobs": f"{n},{n + 9}"})
    return pd.DataFrame(rows)


def test_the_figure_overlays_one_curve_per_study_and_treatment_with_clipped_bands():
    summaries = {"#1 short": summary(0.0), "#2 long": summary(0.5, ("AnB",))}
    fig = compare_figure(summaries, "final_accuracy", ["AnB", "random"])
    curves = [t for t in fig.data if t.fill is None and t.showlegend is not False]
    assert sorted(t.name for t in curves) == ["#1 short · AnB", "#1 short · baseB", "#1 short · random",
                                              "#2 long · AnB", "#2 long · baseB"]
    by_name = {t.name: t for t in curves}
    assert by_name["#1 short · AnB"].line.color == by_name["#2 long · AnB"].line.color == COLOURS["AnB"]
    assert by_name["#1 short · AnB"].line.dash != by_name["#2 long · AnB"].line.dash  # the study tells apart
    assert by_name["#1 short · baseB"].line.dash == "dash"
    assert "jobs %{customdata[2]}" in by_name["#1 short · AnB"].hovertemplate  # hover names the jobs
    assert list(by_name["#1 short · AnB"].customdata[0]) == [3.0, 2, "1,10"]
    bands = [t for t in fig.data if t.fill == "toself"]
    assert len(bands) == 5
    for band in bands:
        assert band.mode == "lines"
        assert min(band.y) >= 0.0 and max(band.y) <= 100.0


def test_the_table_stacks_the_studies():
    table = compare_table({"#1": summary(0.0), "#2": summary(1.0), "#3": summary(0.0).iloc[0:0]})
    assert list(table.columns[:2]) == ["study", "treatment"] and set(table.study) == {"#1", "#2"}
