import json

import pytest

from backend.cli import main
from backend.specs import PRESETS, SpecError, TrainJobSpec, YosinskiSpec, parse, spec_hash
from backend.studies import expand, parse_study, yosinski
from backend.studies.local import run_local

TINY = {
    "data": {"source": {"kind": "synthetic", "n_classes": 4, "train_per_class": 30, "test_per_class": 10, "size": 8}},
    "model": {"arch": "convnet", "channels": [4, 8], "hidden": [8]},
    "train": {"epochs": 2, "batch_size": 32},
    "seeds": [0, 1],
    "probes": {"sharpness": None, "similarity": None},
}


def test_plan_has_bases_first_and_links_sources():
    study = parse(YosinskiSpec, TINY)
    plan = yosinski.expand(study)
    assert study.n_values == [1, 2, 3]
    assert len(plan) == 2 * (2 + 5 * 3)
    seen = set()
    for job in plan:
        assert set(job.depends_on) <= seen  # dependencies come earlier
        seen.add(job.key)
        if job.labels["treatment"] in ("AnB", "AnB+", "BnB", "BnB+"):
            source = job.spec.source
            assert job.depends_on == (spec_hash(source),)
            assert source.data.classes.half == job.labels["treatment"][0]
            assert job.spec.treatment == job.labels["treatment"]
            assert job.spec.train.seed != source.train.seed  # fresh init above n
        if job.labels["treatment"] == "random":
            assert job.depends_on == () and job.spec.source is None
    halves = {(j.labels["seed"], j.labels["treatment"]): j.spec.data.classes for j in plan if j.kind == "train"}
    assert halves[(0, "baseA")].seed == 0 and halves[(1, "baseA")].seed == 1


def test_halves_of_a_seed_are_disjoint_tasks():
    plan = yosinski.expand(parse(YosinskiSpec, TINY))
    a, b = (j.spec.data for j in plan[:2])
    assert isinstance(plan[0].spec, TrainJobSpec) and a.classes.half == "A" and b.classes.half == "B"


def test_small_study_runs_and_summarises():
    study = parse(YosinskiSpec, {**TINY, "seeds": [0], "n": [1, 3], "treatments": ["AnB", "random"]})
    table = yosinski.rows(run_local(yosinski.expand(study), "cpu"))
    assert len(table) == 2 + 2 * 2
    pivot = yosinski.summary(table)
    assert list(pivot.columns) == ["baseB", "baseA", "AnB", "random"] and list(pivot.index) == [0, 1, 3]
    assert table["final"].between(0, 100).all() and (table["best10"] >= 0).all()


def test_presets_are_valid_studies_at_both_sizes():
    for name, preset in PRESETS.items():
        full, quick = (parse_study(preset.spec_dict(quick=q)) for q in (False, True))
        assert full.study == preset.study and preset.asks, name
        assert 0 < len(expand(quick)) <= len(expand(full)), name


@pytest.mark.parametrize("bad, field", [
    ({**TINY, "n": [0, 1]}, "n"),
    ({**TINY, "n": [4]}, "n"),
    ({**TINY, "seeds": []}, "seeds"),
    ({**TINY, "treatments": ["AnC"]}, "treatments.0"),
    ({**TINY, "data": {**TINY["data"], "classes": {"half": "A"}}}, "data.classes.half"),
])
def test_bad_study_specs_name_the_field(bad, field):
    with pytest.raises(SpecError) as info:
        parse(YosinskiSpec, bad)
    assert info.value.field == field


def test_cli_sweep_prints_the_table_and_writes_results(tmp_path, capsys):
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(TINY))
    code = main(["sweep", "--spec", str(spec), "--seeds", "0", "--n", "1,2", "--treatments", "BnB,AnB+",
                 "--epochs", "1", "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    assert code == 0
    assert "final test accuracy" in printed and "AnB+" in printed
    written = json.loads(next((tmp_path / "out").glob("*.json")).read_text())
    assert len(written["rows"]) == 2 + 2 * 2 and written["study"]["train"]["epochs"] == 1
    assert next((tmp_path / "out").glob("*.csv")).read_text().startswith("seed,treatment,n,final,best10")


def test_cli_sweep_rejects_impossible_layer_counts(capsys):
    assert main(["sweep", "--preset", "yosinski-digits", "--n", "9"]) == 2
    assert "n: [9] out of range" in capsys.readouterr().err


def test_cli_sweep_runs_the_probes_in_process(tmp_path, capsys):
    spec = tmp_path / "probed.json"
    spec.write_text(json.dumps({**TINY, "probes": {
        "sharpness": {"images": 16, "trace_samples": 6, "density": False, "max_iterations": 20},
        "similarity": {"images": 16, "batch_size": 8}}}))
    code = main(["sweep", "--spec", str(spec), "--seeds", "0", "--n", "2", "--treatments", "AnB",
                 "--epochs", "1", "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    assert code == 0 and "Hessian top eigenvalue" in printed and "mean CKA diagonal against baseB" in printed
    rows = {r["treatment"]: r for r in json.loads(next((tmp_path / "out").glob("*.json")).read_text())["rows"]}
    assert set(rows) == {"baseA", "baseB", "AnB"} and all(r["top_eigenvalue"] > 0 for r in rows.values())
    assert 0 <= rows["AnB"]["cka_vs_baseB"] <= 1
    # AnB's first 2 of 4 units are baseA's, frozen: two diagonal entries are exactly 1
    assert rows["AnB"]["cka_vs_baseA"] >= 0.5 - 1e-6


def test_cli_lists_presets_and_sizes_them(capsys):
    assert main(["presets"]) == 0
    presets, quantities = capsys.readouterr().out.split("\n\nQuantities sequential seeds can stop on")
    listed = presets.splitlines()
    assert [line.split()[0] for line in listed] == list(PRESETS)
    assert all(line.split()[1] == PRESETS[line.split()[0]].study for line in listed)
    from backend.specs.seeds import SEED_QUANTITIES

    assert all(f"{kind:<14} {q}" in quantities for kind, names in SEED_QUANTITIES.items() for q in names)
    assert main(["sweep", "--preset", "yosinski-mnist", "--quick", "--print-spec"]) == 0
    quick = json.loads(capsys.readouterr().out)
    assert quick["seeds"] == [0] and quick["data"]["per_class"] == 100


def test_cli_sweep_adds_seeds_until_the_interval_is_as_narrow_as_asked(tmp_path, capsys):
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(TINY))
    args = ["sweep", "--spec", str(spec), "--seeds", "0,1", "--n", "1", "--treatments", "AnB+", "--epochs", "1",
            "--out", str(tmp_path / "out")]
    assert main([*args, "--until", "anb_plus_gain=1e-9", "--max-seeds", "3"]) == 0  # impossible: the budget
    printed = capsys.readouterr().out
    assert "seed 2 of at most 3: anb_plus_gain" in printed and "seed 3 of at most 3" in printed
    assert "done (budget)" in printed
    written = json.loads(max((tmp_path / "out").glob("*.json")).read_text())
    assert sorted({row["seed"] for row in written["rows"]}) == [0, 1, 2]
    assert main([*args, "--until", "anb_plus_gain=1000", "--max-seeds", "3"]) == 0  # loose: the first seeds
    assert "seed 2 of at most 3" in capsys.readouterr().out.split("done (reached)")[0]
    assert main([*args, "--until", "anb_plus_gain"]) == 2
    assert "--until: expected QUANTITY=HALF_WIDTH" in capsys.readouterr().err
