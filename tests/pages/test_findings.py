"""The Findings page: every verdict kind as a user sees it, the filters in the URL, the links to each
finding's figure and jobs, and "Add seeds until decided" behind the lab login on a real store."""

import sqlite3

import pandas as pd
import pytest

from backend import findings
from backend.settings import hash_password
from backend.verdicts import judge, table, versus
from db.session import get_engine
from db.studies import Studies


@pytest.fixture(autouse=True)
def fresh_report():
    """The page caches the report per database URL; each test reads its own."""
    import streamlit as st

    st.cache_data.clear()
    yield
    st.cache_data.clear()


def per_seed(*values: float) -> pd.Series:
    return pd.Series(values, index=range(len(values)), dtype=float)


def hand_built(listing) -> findings.Report:
    """A report on the seeded study with one finding of each kind, judged from fixed per-seed numbers."""
    made = [
        judge("Gain that holds", "Per seed: 2.0, 2.5, 3.0, 2.2.", "Paper A: +2 points.", "AnB+ - baseB",
              per_seed(2.0, 2.5, 3.0, 2.2), "greater", 0.5, "points", page="layers"),
        judge("Drop that reverses", "Per seed: -2.0, -2.6, -3.1.", "Paper B: a drop of 8.5 points.",
              "AnB(n=1) - AnB(n=3)", per_seed(-2.0, -2.6, -3.1), "greater", 1.0, "points", page="layers"),
        judge("Gain too noisy to call", "| seed | gain |\n|---|---|\n| 0 | 0.4 |\n| 1 | 1.9 |\n| 2 | -0.3 |",
              "Paper C: +1.7 points.", "AnB+ - baseB (mean over n)", per_seed(0.4, 1.9, -0.3), "greater", 0.5,
              "points", quantity="anb_drop", page="layers"),
        table("Accuracy per treatment and n", "| n | AnB |\n|---|---|\n| 1 | 97.1 |", "Paper D: the figure.",
              "explorer"),
    ]
    across = [versus(f"Study {listing.id} (dissimilar) vs study {listing.id} (similar): AnB drop", "Paper E.",
                     "AnB drop per unit", ("dissimilar", per_seed(3.0, 3.4, 2.9)), ("similar", per_seed(1.0, 1.1, 0.8)),
                     "greater", 0.25, "points", 2, page="compare")]
    studies = [findings.StudyFindings(listing, "ab" * 32, [0, 1, 2], made)]
    return findings.Report("SQLite file store.db", studies, across)


@pytest.fixture
def built(seeded_store, monkeypatch):
    url, study_id = seeded_store
    listing = next(s for s in Studies(get_engine(url)).listing() if s.id == study_id)
    report = hand_built(listing)
    monkeypatch.setattr(findings, "collect", lambda engine: report)
    return report


def text(at) -> str:
    return "\n".join(m.value for m in at.markdown) + "\n".join(c.value for c in at.caption)


def links(at) -> list[tuple[str, str, str]]:
    return [(e.proto.label, e.proto.page, e.proto.query_string) for e in at.get("page_link")]


def test_the_seeded_store_reads_as_findings(app, seeded_store):
    _, study_id = seeded_store
    at = app("findings.py").run()
    assert not at.exception
    shown = text(at)
    assert f"Study #{study_id}: tiny" in at.subheader[0].value and "yosinski-digits" in shown
    assert "Accuracy per treatment and n" in shown and "table, no verdict" in shown  # the table-only finding
    assert "AnB drop from n = " in shown and "**Claim tested**: AnB(n=" in shown and "Yosinski et al. 2014" in shown
    assert "(95% t, 2 seeds" in shown  # the paired difference with its interval and seeds
    counts = {m.label: int(m.value) for m in at.metric}
    assert sum(counts[v] for v in ("Agrees", "Disagrees", "Undecided")) >= 1
    assert ("The figure: Layer transfer", "layers", f"study={study_id}") in links(at)
    assert (f"The jobs behind it: study #{study_id}", "jobs", f"study={study_id}") in links(at)


def test_every_verdict_kind_is_shown_apart(app, built, seeded_store):
    _, study_id = seeded_store
    at = app("findings.py").run()
    assert not at.exception
    shown = text(at)
    assert ":green-badge[:material/check_circle: agrees]" in shown
    assert ":red-badge[:material/cancel: disagrees]" in shown
    assert ":orange-badge[:material/help: undecided: about 14 seeds would decide it]" in shown
    assert ":gray-badge[:material/table: table, no verdict]" in shown
    assert "Agrees: the 95% interval [1.73, 3.12] points lies wholly on the paper's side of 0." in shown
    assert "Disagrees: the 95% interval [-3.93, -1.2] points lies wholly on the other side of 0." in shown
    assert "about 14 seeds would likely decide it" in shown
    assert "**Measured** (points): 0.67 [-2.13, 3.46] (95% t, 3 seeds; P(improvement) 0.67)" in shown
    assert "**Claim tested**: AnB+ - baseB (mean over n) > 0, margin ±0.5 points" in shown
    assert "**Paper**: Paper C: +1.7 points." in shown
    assert any("| 2 | -0.3 |" in e.markdown[0].value for e in at.expander if e.markdown)  # measured, in an expander
    assert {m.label: m.value for m in at.metric} == {"Agrees": "2", "Disagrees": "1", "Undecided": "1",
                                                      "Tables without a verdict": "1"}
    assert ("The figure: Explorer", "explorer", f"studies={study_id}") in links(at)
    assert ("The figure: Compare studies", "compare", f"studies={study_id}") in links(at)
    assert at.subheader[-1].value == "Across studies"
    # Open mode: the undecided finding with a quantity offers seeds; the others do not.
    assert [b.key for b in at.button if (b.key or "").endswith(".add")] == [f"findings.{study_id}.2.add"]
    assert at.number_input(key=f"findings.{study_id}.2.max_seeds").value == 14  # max(seeds needed, seeds + 2)
    assert "precision" in text(at) and "never on significance" in text(at)


def test_the_filters_live_in_the_url_and_a_bad_value_falls_back(app, built, seeded_store):
    _, study_id = seeded_store
    at = app("findings.py")
    at.query_params.update({"verdict": "undecided", "study": str(study_id)})
    at.run()
    assert not at.exception and not at.warning
    shown = text(at)
    assert "Gain too noisy to call" in shown and "Gain that holds" not in shown and "Accuracy per" not in shown
    assert at.selectbox(key="findings.verdict").value == "undecided"
    at.selectbox(key="findings.verdict").set_value("table").run()
    assert "Accuracy per treatment and n" in text(at) and "Gain too noisy" not in text(at)
    assert at.query_params["verdict"] == "table" and at.query_params["study"] == str(study_id)

    at = app("findings.py")
    at.query_params.update({"verdict": "maybe", "study": "999"})
    at.run()
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "Ignored `verdict=maybe`" in warnings and "Ignored `study=999`" in warnings
    assert "Gain that holds" in text(at) and "Across studies" in [s.value for s in at.subheader]


@pytest.fixture
def lab_copy(app, seeded_store, tmp_path, monkeypatch):
    """A copy of the seeded store (set_rule writes to it), in lab mode; returns its URL."""
    url, _ = seeded_store
    source, copy = sqlite3.connect(url.removeprefix("sqlite:///")), sqlite3.connect(tmp_path / "copy.db")
    source.backup(copy)
    source.close(), copy.close()
    monkeypatch.setenv("TRANSFERLAB_DATABASE_URL", f"sqlite:///{tmp_path / 'copy.db'}")
    monkeypatch.setenv("TRANSFERLAB_ACCESS_MODE", "lab")
    monkeypatch.setenv("TRANSFERLAB_PASSWORD_HASH", hash_password("correct horse"))
    return f"sqlite:///{tmp_path / 'copy.db'}"


def test_add_seeds_needs_a_login_then_starts_the_rule_and_shows_its_progress(app, built, seeded_store, lab_copy):
    from db import sequential
    from db.queue import Queue

    _, study_id = seeded_store
    key = f"findings.{study_id}.2"
    at = app("findings.py").run()
    assert not at.exception
    assert at.button(key=f"{key}.add").disabled and "Log in" in at.button(key=f"{key}.add").help

    at = app("findings.py")
    at.session_state["access.user"] = "ada"  # logged in, as the sidebar's form leaves it
    at.run()
    assert not at.button(key=f"{key}.add").disabled
    at.number_input(key=f"{key}.max_seeds").set_value(6)
    at.button(key=f"{key}.add").click().run()
    assert not at.exception
    rule = sequential.progress(Queue(get_engine(lab_copy)), study_id)
    assert rule is not None and (rule.quantity, rule.max_seeds) == ("anb_drop", 6)
    assert rule.asked == pytest.approx(0.649, abs=1e-3)  # the 95% t half-width at 14 seeds, at the spread seen
    assert any(f"Study #{study_id} now adds seeds" in s.value for s in at.success)
    assert any(f"Sequential seeds: {rule.text()}" == i.value for i in at.info)
    assert rule.text().startswith("seed 2 of at most 6")  # its two seeds already agree exactly: no seed added


def test_the_asked_half_width_and_budget():
    from ui.findings import deciding_half_width, default_max_seeds

    noisy = judge("t", "m", "p", "a - b", per_seed(0.4, 1.9, -0.3), "greater", 0.5, "points", quantity="anb_drop")
    assert noisy.seeds_needed == 14 and deciding_half_width(noisy) == pytest.approx(0.649, abs=1e-3)
    assert default_max_seeds(noisy, 3) == 14 and default_max_seeds(noisy, 20) == 22
    assert default_max_seeds(judge("t", "m", "p", "a - b", per_seed(-3.0, 5.0, 1.0), "greater", 0.5,
                                   quantity="anb_drop"), 3) == 30  # capped
    one_seed = judge("t", "m", "p", "a - b", per_seed(1.0), "greater", 0.5, quantity="anb_drop")
    assert one_seed.verdict == "undecided" and deciding_half_width(one_seed) == 0.5  # no spread yet: the margin


def test_an_undecided_finding_without_a_seeds_rule_says_what_would_decide_it(app, seeded_store, monkeypatch):
    """Only a finding whose difference a seeds rule follows gets the button; the others say why not."""
    url, study_id = seeded_store
    listing = next(s for s in Studies(get_engine(url)).listing() if s.id == study_id)
    noisy = per_seed(0.4, 1.9, -0.3)
    made = [judge("No rule follows it", "m", "p", "a - b", noisy, "greater", 0.5, "points"),
            judge("No premise", "m", "p", "a - b", noisy, "less", 0.5, "points", quantity="anb_drop",
                  moot="P-T's gain on 'plain' is not established")]
    across = [versus(f"Study {study_id} (dissimilar) vs study {study_id} (similar): AnB drop", "p", "drop",
                     ("x", noisy), ("y", per_seed(1.5, -0.5, 0.9)), "greater", 0.5)]
    report = findings.Report("SQLite file store.db", [findings.StudyFindings(listing, "ab" * 32, [0, 1, 2], made)],
                             across)
    monkeypatch.setattr(findings, "collect", lambda engine: report)
    at = app("findings.py").run()
    assert not at.exception
    assert not [b for b in at.button if (b.key or "").endswith(".add")]
    shown = text(at)
    assert "No seeds rule follows this difference yet" in shown
    assert "More seeds are not offered" in shown
    assert "add seeds to both" in shown
