"""Model selection: which candidate source should be fine-tuned on the target? Each candidate's
transferability score against its fine-tuned accuracy, and how well each score ranked the candidates
(You et al. 2021: weighted Kendall's tau, Spearman's rho, top-1 hit) against what scoring saved."""

import streamlit as st

from backend.specs.selection import RANK_SCORES
from backend.studies.selection import candidate_table
from db.schema import QUEUED, RUNNING, SUCCEEDED
from ui import presets, selection, store
from ui.state import PageState
from ui.widgets import figure, job_table, jobs_of_point, open_jobs, study_id

KIND = "model_selection"

state = PageState("selection")
st.title("Model selection")
st.caption("Score every candidate source on the target without training (LogME, LEEP, NCE, H-score), fine-tune "
           "every candidate, and see whether the cheap score would have picked the best one.")

linked = study_id(str(st.query_params.get("study", "")))  # a study the link names, even if archived
studies = [s for s in store.studies().listing(include=[linked] if linked else [], kind=KIND) if s.kind == KIND]
if not studies:
    presets.empty_state("No model-selection study in the store yet. Queue one on the New study page, or with "
                        "`python -m backend submit --spec study.json` (a spec with \"study\": \"model_selection\").",
                        presets.filled_by(["rank_agreement"]))
    st.stop()

names = {s.id: f"#{s.id} {s.name} ({s.total} jobs)" for s in studies}
left, middle, right = st.columns([3, 1, 1])
study = left.selectbox("Study", list(names), format_func=names.get,
                       key=state.bind("study", studies[0].id, int, names.__contains__))
amounts = selection.amount_choices(store.results().label_values(study, ["amount"]).get("amount", []))
amount = middle.selectbox("Training images per class", amounts or ["all"],
                          key=state.bind("amount", (amounts or ["all"])[0], str, amounts.__contains__))
score = right.selectbox("Score", RANK_SCORES, format_func=selection.SCORE_NAMES.get,
                        key=state.bind("score", RANK_SCORES[0], valid=RANK_SCORES.__contains__))
state.report()

listing = next(s for s in studies if s.id == study)
pending = listing.counts.get(QUEUED, 0) + listing.counts.get(RUNNING, 0)
unfinished = listing.total - listing.counts.get(SUCCEEDED, 0) - pending
if pending:
    st.info(f"Study #{study} is still running: {listing.counts.get(SUCCEEDED, 0)} of {listing.total} jobs have "
            f"succeeded, {pending} are queued or running. What is shown is what has finished; the rank agreement "
            "at an amount lands once every candidate there is scored and fine-tuned.")
if unfinished:
    st.warning(f"{unfinished} jobs of study #{study} did not succeed: a candidate they belong to may be missing "
               "or have fewer seeds.")
    status = next(s for s in sorted(listing.counts) if s not in (SUCCEEDED, QUEUED, RUNNING))
    st.page_link("app_pages/jobs.py", label=f"The {status} jobs and their errors on the Jobs page",
                 query_params={"study": study, "status": status}, icon=":material/list:")

spec = store.results().study_spec(study) or {}
order = [c.get("name") for c in spec.get("candidates", [])]
rows = store.results().study_scores(study, kinds=["scores", "transfer", "train"],
                                    labels={"amount": selection.amount_value(amount)})
table = candidate_table(rows, order)
if table.empty:
    st.info(f"Nothing at {selection.amount_words(amount)} has finished yet: no candidate has been scored or "
            "fine-tuned there.")
    state.sync()
    st.stop()

ranking = store.results().study_scores(study, kinds=["rank_agreement"])
here = ranking[ranking.amount.astype(str) == amount] if not ranking.empty else ranking
agreement = None
if not here.empty:
    stored = here.iloc[0]
    candidates = int((table.candidate != selection.SCRATCH).sum())
    agreement = selection.agreement_text(stored, score, candidates, store.results().job_tables(int(stored.job)))
    columns = st.columns(4)
    for column, measure in zip(columns, selection.AGREEMENT):
        value = stored.get(f"{score}.{measure}")
        shown = selection.hit(value) if measure == "top1" else selection.number(value).split(" ")[0]
        name = selection.AGREEMENT[measure]
        column.metric(name[0].upper() + name[1:], shown)
    columns[3].metric("Fine-tuning / scoring time", f"{stored.cost_ratio:.3g}x",
                      help=f"scoring {stored.score_seconds:.3g} s, fine-tuning {stored.fine_tune_seconds:.3g} s")
elif not table.accuracy.notna().any():
    st.info("No candidate has been fine-tuned at this amount yet: the scores are listed below.")

event = figure(selection.selection_figure(table, score), "selection.chart",
               selection.figure_caption(score, amount, agreement), clickable=True)
open_jobs(study, jobs_of_point(event))
if not here.empty:
    st.page_link("app_pages/job.py", label=f"The ranking job {int(here.iloc[0].job)}: its spec and stored tables",
                 query_params={"job": int(here.iloc[0].job)}, icon=":material/info:")

st.subheader("Candidates")
job_table(selection.shown_table(table), "selection.candidates", study, width="stretch",
          column_config={c: st.column_config.NumberColumn(c, format="%.3f")
                         for c in ("accuracy (%)", "± 95% t", *selection.SCORE_NAMES.values())})
st.caption("Accuracy: mean final test accuracy (%) over the candidate's succeeded seeds, ± the 95% Student t "
           "half-width (none with one seed). Select a row to open its jobs: its fine-tuning runs' curves, or its "
           "scoring job before it is fine-tuned.")

st.subheader("Rank agreement per score, every amount")
if ranking.empty:
    st.info("No rank agreement is stored yet: each amount's ranking job runs once every candidate there is "
            "scored and fine-tuned.")
else:
    job_table(selection.agreement_table(ranking), "selection.agreement", study, jobs="job", width="stretch")
    st.caption("As the ranking jobs stored them: weighted Kendall's tau (hyperbolic weights: swaps among the best "
               "candidates cost most), Spearman's rho, and the top-1 hit (1: the best-scored candidate is a best "
               "fine-tuned one). n/a: the score was the same for every candidate. Select a row to open its job.")

state.sync()
