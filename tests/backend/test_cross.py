"""The cross-data-set study: its spec, its DAG, and a quick run through the in-process runner."""

import pytest

from backend.specs import CrossDatasetSpec, SpecError, parse
from backend.studies import expand, parse_study

SYN = {"kind": "synthetic", "n_classes": 4, "train_per_class": 12, "test_per_class": 6, "size": 8}
STUDY = {"study": "cross_dataset", "source": {"source": SYN},
         "targets": [{"name": "near", "data": {"source": {**SYN, "gap": 0.2}}, "strength": 0.2},
                     {"name": "far", "data": {"source": {**SYN, "gap": 1.0}}, "strength": 1.0}],
         "model": {"arch": "convnet", "channels": [4, 8], "hidden": [8]}, "train": {"epochs": 2, "batch_size": 8},
         "seeds": [0, 1], "amounts": [5, None], "n": [1, 2],
         "probes": {"gap": {"images": 20}, "scores": {"images": 20}}}


def test_the_dag_pretrains_once_per_seed_and_trains_each_target_and_amount():
    plan = expand(parse_study(STUDY))
    networks = [j for j in plan if "probe" not in j.labels]
    pretrain = [j for j in networks if j.labels["treatment"] == "baseA"]
    assert len(pretrain) == 2 and len({j.key for j in pretrain}) == 2  # one per seed
    scratch = [j for j in networks if j.labels["treatment"] == "baseB"]
    assert {(j.labels["seed"], j.labels["target"], j.labels["amount"]) for j in scratch} == {
        (s, t, a) for s in (0, 1) for t in ("near", "far") for a in (5, "all")} and len(scratch) == 8
    transfers = [j for j in networks if j.labels["treatment"] in ("AnB", "AnB+")]
    assert len(transfers) == 2 * 2 * 2 * 2 * 2  # seeds x targets x amounts x treatments x n
    by_key = {j.key: j for j in plan}
    for job in transfers:  # every transfer reads its seed's pretrained network
        [source] = job.depends_on
        assert by_key[source].labels == {"seed": job.labels["seed"], "depth": 3, "treatment": "baseA", "n": 0}
    assert [j.spec.data.per_class for j in scratch if j.labels["amount"] == 5] == [5] * 4
    probes = {kind: [j for j in plan if j.kind == kind] for kind in ("gap", "chen_t", "scores")}
    assert len(probes["gap"]) == 2 * 2 and len(probes["scores"]) == 2 * 2 * 2
    assert len(probes["chen_t"]) == 2 * 2 * 2 * 2  # every AnB+ network
    assert all(by_key[j.spec.fine_tuned].labels["treatment"] == "AnB+" for j in probes["chen_t"])
    order = {j.key: i for i, j in enumerate(plan)}
    assert all(order[d] < order[j.key] for j in plan for d in j.depends_on)  # dependencies first


def test_depth_and_class_share_are_grid_axes_with_one_pretraining_per_depth():
    study = parse_study({**STUDY, "seeds": [0], "amounts": [None], "n": None, "depths": [1, 2],
                         "class_fractions": [0.5, None], "probes": {"gap": {"images": 20}, "chen_t": False,
                                                                   "scores": None, "sharpness": {"images": 8},
                                                                   "similarity": {"images": 8}}})
    plan = expand(study)
    networks = [j for j in plan if "probe" not in j.labels]
    pretrain = {j.labels["depth"]: j for j in networks if j.labels["treatment"] == "baseA"}
    assert sorted(pretrain) == [2, 3]  # 1 and 2 conv blocks, plus the hidden fc layer
    assert [len(j.spec.model.channels) for j in pretrain.values()] == [1, 2]
    scratch = [j for j in networks if j.labels["treatment"] == "baseB"]
    assert {(j.labels["depth"], j.labels["target"], j.labels["class_fraction"]) for j in scratch} == {
        (d, t, f) for d in (2, 3) for t in ("near", "far") for f in (0.5, 1.0)}
    assert {j.spec.data.classes.fraction for j in scratch} == {0.5, None}
    for job in networks:  # n runs over each depth's own units, all but the classifier
        if job.labels["treatment"] == "AnB":
            assert 1 <= job.labels["n"] <= job.labels["depth"]
            assert pretrain[job.labels["depth"]].key in job.depends_on
    assert len([j for j in networks if j.labels["treatment"] == "AnB"]) == (2 + 3) * 2 * 2
    gap = [j for j in plan if j.kind == "gap"]
    assert len(gap) == 2 * 2 * 2  # per depth (its features), target and class share
    # Sharpness of every target network; CKA of each P-T network against its RI-T and pretrained ones.
    sharp = [j for j in plan if j.kind == "sharpness"]
    assert len(sharp) == len(networks) - 2
    by_key = {j.key: j for j in plan}
    for job in (j for j in plan if j.kind == "similarity"):
        a, b = by_key[job.spec.a], by_key[job.spec.b]
        assert b.labels["treatment"] == job.labels["against"] and a.labels["depth"] == b.labels["depth"]
        if job.labels["against"] == "baseB":
            assert (a.labels["target"], a.labels["class_fraction"]) == (b.labels["target"], b.labels["class_fraction"])
    with pytest.raises(SpecError, match="1..2") as err:
        parse(CrossDatasetSpec, {**STUDY, "depths": [3]})
    assert err.value.field == "depths"
    with pytest.raises(SpecError, match="distinct") as err:
        parse(CrossDatasetSpec, {**STUDY, "class_fractions": [1.0, None]})
    assert err.value.field == "class_fractions"


def test_two_studies_share_their_pretraining_by_content_hash():
    one = {j.key for j in expand(parse_study(STUDY))}
    other = {j.key for j in expand(parse_study({**STUDY, "targets": STUDY["targets"][:1], "seeds": [0]}))}
    assert other < one  # a subset of the first study's jobs: nothing of it is computed twice


def test_bad_grids_are_refused_with_the_field():
    with pytest.raises(SpecError, match="distinct") as err:
        parse(CrossDatasetSpec, {**STUDY, "targets": [STUDY["targets"][0]] * 2})
    assert err.value.field == "targets"
    with pytest.raises(SpecError, match="units 1..3") as err:
        parse(CrossDatasetSpec, {**STUDY, "n": [7]})
    mismatch = {**STUDY, "targets": [{"name": "big", "data": {"source": SYN, "size": 16}}],
                "source": {"source": SYN, "size": 8}}
    with pytest.raises(SpecError, match="set input.size") as err:
        parse(CrossDatasetSpec, mismatch)
    assert err.value.field == "targets.0.data.size"
    fixed = parse(CrossDatasetSpec, {**mismatch, "input": {"size": 12}})
    assert {j.spec.data.size for j in expand(fixed) if hasattr(j.spec, "data")} == {12}


def test_every_preset_expands_at_both_sizes():
    from backend.specs import PRESETS

    for name, preset in PRESETS.items():
        for quick in (False, True):
            plan = expand(parse_study(preset.spec_dict(quick=quick)))
            assert plan and len({j.key for j in plan}) == len(plan), name


def test_scores_are_ranked_against_the_measured_gain_across_targets():
    from types import SimpleNamespace

    import pandas as pd

    from backend.studies.cross import score_ranking

    gains = {"a": 1.0, "b": 5.0, "c": 9.0, "d": 3.0}
    outcomes = [SimpleNamespace(job=SimpleNamespace(labels={"seed": 0, "target": t, "amount": "all", "probe": "scores"}),
                                output=SimpleNamespace(scalars={"logme": g, "leep": -g, "nce": g ** 2, "h_score": 1.0}))
                for t, g in gains.items()]
    table = pd.DataFrame([{"seed": 0, "target": t, "amount": "all", "treatment": "AnB+", "n": 2, "gain": g}
                          for t, g in gains.items()])
    ranking = score_ranking(outcomes, table)
    assert ranking.loc["logme", "spearman"] == 1 and ranking.loc["leep", "spearman"] == -1
    assert ranking.loc["nce", "kendall"] == 1 and ranking.loc["logme", "targets"] == 4
    assert "h_score" not in ranking.index  # a constant score ranks nothing
    assert score_ranking(outcomes[:2], table).empty  # two targets are too few to rank
