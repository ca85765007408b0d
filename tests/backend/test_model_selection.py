"""The model-selection study: its known answers, its spec and DAG, and a run through the local runner."""

from __future__ import annotations

import hashlib
import math

import pytest
import torch

from backend.probes.transferability import h_score, leep, logme, nce
from backend.stats import rank_agreement
from backend.specs import SpecError
from backend.specs.selection import RANK_SCORES
from backend.studies import STUDY_KINDS, expand, parse_study
from backend.studies.local import run_local

SYN = {"kind": "synthetic", "n_classes": 4, "train_per_class": 12, "test_per_class": 6, "size": 8}
STUDY = {"study": "model_selection",
         "candidates": [{"name": "near", "source": {"source": {**SYN, "gap": 0.1}}},
                        {"name": "far", "source": {"source": {**SYN, "gap": 1.0}}},
                        {"name": "digits", "source": {"source": {"kind": "digits"}, "size": 8}}],
         "target": {"source": SYN}, "model": {"arch": "convnet", "channels": [4, 8], "hidden": [8]},
         "pretrain": {"epochs": 2, "batch_size": 16}, "train": {"epochs": 1, "batch_size": 16},
         "seeds": [0, 1], "amounts": [6], "scores": {"images": 24}}


def _scores(features: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    probs = torch.softmax(4 * features, dim=1)  # a source classifier reading these features
    return {"logme": logme(features, y), "leep": leep(probs, y), "nce": nce(probs.argmax(1), y),
            "h_score": h_score(features, y)}


def test_every_score_ranks_first_the_source_whose_features_are_the_labels():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(5).repeat(60)
    onehot = torch.nn.functional.one_hot(y, 5).double()
    sources = {"labels + noise": onehot + 0.2 * torch.randn(len(y), 5, generator=g, dtype=torch.float64),
               "noisier": onehot + 1.5 * torch.randn(len(y), 5, generator=g, dtype=torch.float64),
               "noise": torch.randn(len(y), 5, generator=g, dtype=torch.float64)}
    scored = {name: _scores(f, y) for name, f in sources.items()}
    for score in RANK_SCORES:
        ranked = sorted(scored, key=lambda name: scored[name][score], reverse=True)
        assert ranked == list(sources), (score, {n: s[score] for n, s in scored.items()})


def test_rank_agreement_known_answers():
    same = rank_agreement([0.1, 0.5, 0.9, 0.3], [60, 70, 90, 65])
    assert same == {"weighted_tau": pytest.approx(1.0), "spearman": pytest.approx(1.0), "top1": 1.0}
    reversed_ = rank_agreement([0.9, 0.5, 0.1], [60, 70, 90])
    assert reversed_["weighted_tau"] == pytest.approx(-1.0) and reversed_["spearman"] == pytest.approx(-1.0)
    assert reversed_["top1"] == 0.0
    flat = rank_agreement([1.0, 1.0 + 1e-12, 1.0], [60, 70, 90])  # equal but for rounding: a tie
    assert math.isnan(flat["weighted_tau"]) and math.isnan(flat["top1"])
    # A swap among the best costs more than one among the worst (the weighting of You et al.).
    top_swap = rank_agreement([4, 3, 2, 1, 0], [3, 4, 2, 1, 0])["weighted_tau"]
    bottom_swap = rank_agreement([4, 3, 2, 1, 0], [4, 3, 2, 0, 1])["weighted_tau"]
    assert top_swap < bottom_swap < 1
    with pytest.raises(ValueError, match="at least 2"):
        rank_agreement([1.0], [50.0])


def test_the_dag_scores_and_fine_tunes_every_candidate_then_ranks():
    plan = expand(parse_study(STUDY))
    kinds = [j.kind for j in plan]
    assert kinds.count("train") == 3 + 2  # 3 pretrainings, 2 from-scratch baselines
    assert kinds.count("scores") == 3 and kinds.count("transfer") == 3 * 2 and kinds.count("rank_agreement") == 1
    ranking = plan[-1]
    assert set(ranking.depends_on) == {j.key for j in plan if j.kind in ("scores", "transfer")}
    assert all(j.labels["n"] == 3 for j in plan if j.kind == "transfer")  # every unit but the classifier


@pytest.mark.parametrize("edit, field", [
    ({"candidates": [{"name": "a", "source": {"source": SYN}}]}, "candidates"),
    ({"candidates": [{"name": "a", "source": {"source": SYN}}, {"name": "a", "source": {"source": SYN}}]},
     "candidates"),
    ({"candidates": [{"name": "a"}, {"name": "b", "source": {"source": SYN}}]}, "candidates.0.source"),
    ({"n": 9}, "n"),
])
def test_bad_selection_specs_name_the_field(edit, field):
    with pytest.raises(SpecError) as err:
        parse_study({**STUDY, **edit})
    assert err.value.field == field


def test_a_selection_study_runs_and_ranks_its_candidates():
    outcomes = run_local(expand(parse_study(STUDY)), "cpu")
    ranking = [o for o in outcomes if o.job.kind == "rank_agreement"][0].output
    for score in RANK_SCORES:
        tau = ranking.scalars[f"{score}.weighted_tau"]
        assert -1 <= tau <= 1 or math.isnan(tau)
        assert ranking.scalars[f"{score}.top1"] in (0.0, 1.0) or math.isnan(ranking.scalars[f"{score}.top1"])
    assert ranking.scalars["fine_tune_seconds"] > 0 and ranking.scalars["score_seconds"] > 0
    table, text, checks = STUDY_KINDS["model_selection"].summarise(outcomes)
    assert set(table.candidate) == {"near", "far", "digits", "from scratch"}
    assert (table[table.candidate != "from scratch"].seeds == 2).all()
    assert "weighted Kendall's tau" in text and "cost: scoring" in text
    best = table.loc[table[table.candidate != "from scratch"].accuracy.idxmax(), "candidate"]
    assert ranking.tables["best"] == best


def test_the_ranking_reads_its_jobs_results_and_pairs_the_lead_over_seeds():
    from backend.measures import run_rank_agreement
    from backend.specs.selection import RankAgreementJobSpec

    accuracy = {"a": [0.90, 0.92, 0.91], "b": [0.88, 0.90, 0.885], "c": [0.70, 0.60, 0.65]}
    score = {"a": 3.0, "b": 2.0, "c": 1.0}
    results, candidates = {}, []
    for name in accuracy:
        keys = [hashlib.sha256(f"{name}{seed}".encode()).hexdigest() for seed in range(3)]
        results.update({k: {"final_accuracy": acc, "train_seconds": 2.0} for k, acc in zip(keys, accuracy[name])})
        scored = hashlib.sha256(name.encode()).hexdigest()
        results[scored] = {s: score[name] for s in RANK_SCORES} | {"seconds": 0.5}
        candidates.append({"name": name, "scores": scored, "fine_tuned": keys})
    spec = RankAgreementJobSpec(amount=20, candidates=candidates)
    out = run_rank_agreement(spec, {}, torch.device("cpu"), lambda *_: None, results=results)
    assert out.scalars["logme.weighted_tau"] == pytest.approx(1.0) and out.scalars["logme.top1"] == 1.0
    assert out.tables["best"] == "a" and out.tables["runner_up"] == "b"
    assert out.scalars["lead"] == pytest.approx(100 * (0.91 - (0.88 + 0.90 + 0.885) / 3))  # mean per-seed difference
    assert 0 < out.scalars["lead_low"] < out.scalars["lead"] < out.scalars["lead_high"]
    assert out.scalars["cost_ratio"] == pytest.approx(9 * 2.0 / 1.5)
    with pytest.raises(SpecError, match="not available"):
        run_rank_agreement(spec, {}, torch.device("cpu"), lambda *_: None, results={})


def test_the_cli_cost_line_counts_the_candidates_fine_tunings_as_the_ranking_job_does():
    from types import SimpleNamespace

    from backend.measures import run_rank_agreement
    from backend.specs.selection import RankAgreementJobSpec

    def outcome(key, labels, scalars, tables=None):
        return SimpleNamespace(job=SimpleNamespace(key=key, labels=labels, kind=""),
                               output=SimpleNamespace(scalars=scalars, tables=tables or {}))

    outcomes, results, candidates = [], {}, []
    for name, acc in (("a", 0.9), ("b", 0.7)):
        scored = hashlib.sha256(name.encode()).hexdigest()
        results[scored] = {s: acc for s in RANK_SCORES} | {"seconds": 0.5}
        outcomes.append(outcome(scored, {"candidate": name, "amount": 20, "probe": "scores"}, results[scored]))
        keys = [hashlib.sha256(f"{name}{seed}".encode()).hexdigest() for seed in range(2)]
        for seed, k in enumerate(keys):
            results[k] = {"final_accuracy": acc + seed / 100, "train_seconds": 2.0}
            outcomes.append(outcome(k, {"candidate": name, "amount": 20, "seed": seed, "treatment": "AnB+", "n": 2},
                                    results[k]))
        candidates.append({"name": name, "scores": scored, "fine_tuned": keys})
    outcomes += [outcome(f"scratch{seed}", {"candidate": "from scratch", "amount": 20, "seed": seed,
                                            "treatment": "baseB", "n": 0},
                         {"final_accuracy": 0.5, "train_seconds": 100.0}) for seed in range(2)]
    stored = run_rank_agreement(RankAgreementJobSpec(amount=20, candidates=candidates), {}, torch.device("cpu"),
                                lambda *_: None, results=results)
    outcomes.append(outcome("ranking", {"amount": 20, "probe": "ranking"}, stored.scalars, stored.tables))
    text = STUDY_KINDS["model_selection"].summarise(outcomes)[1]
    assert (stored.scalars["score_seconds"], stored.scalars["fine_tune_seconds"]) == (1.0, 8.0)
    assert ("cost: scoring 1 s, fine-tuning the candidates 8 s (8x the scoring); "
            "the from-scratch baseline trained 200 s") in text  # not 208 s, 208x


def test_a_job_output_whose_scalar_and_table_share_a_name_is_refused_before_it_is_stored():
    from backend.jobs import JobOutput

    assert JobOutput(scalars={"a": 1.0}, tables={"b": []}).checked().scalars == {"a": 1.0}
    with pytest.raises(ValueError, match="both named 'units'"):
        JobOutput(scalars={"units": 3.0}, tables={"units": {}}).checked()


def test_a_candidate_whose_task_cannot_meet_the_target_names_both():
    rgb = {"name": "cifar", "source": {"source": {**SYN, "size": 16}, "size": 16}}
    with pytest.raises(SpecError, match="size is 16 but target 'target'") as err:
        parse_study({**STUDY, "candidates": [*STUDY["candidates"][:1], rgb], "target": {"source": SYN, "size": 8}})
    assert err.value.field.startswith("candidates.1")
