"""Findings: every preset study's findings beside its paper, each a paired difference with its
interval and seeds, the claim and margin it is judged against, and the verdict (agrees, disagrees,
undecided with the seeds that would likely decide it); filters by verdict and study in the URL."""

import streamlit as st

from db.session import database_url
from ui import findings, presets
from ui.state import PageState

state = PageState("findings")
st.title("Findings")
st.caption("What each preset study measured beside what its paper reported, from succeeded jobs only. A verdict "
           "reads the per-seed paired difference's 95% interval against a margin stated before looking at the data: "
           "**agrees** (the interval lies on the paper's side of 0), **disagrees** (on the other side, or "
           "equivalent to no effect), **undecided** (with the seeds that would likely decide it). "
           "`python -m backend findings` writes the same report to docs/findings.md.")

report = findings.report(database_url())
names = {s.listing.id: f"#{s.listing.id} {s.listing.name} ({s.listing.origin})" for s in report.studies}
left, middle, right = st.columns([2, 3, 1], vertical_alignment="bottom")
verdict = left.selectbox("Verdict", findings.VERDICTS, key=state.bind(
    "verdict", "any", valid=findings.VERDICTS.__contains__))
study = middle.selectbox("Study", [None, *names], format_func=lambda i: "every study" if i is None else names[i],
                         key=state.bind("study", None, int, lambda v: v is None or v in names))
if right.button("Recompute now", key="findings.recompute", help=f"The report is kept {findings.REPORT_TTL_S} s"):
    findings.report.clear()
    st.rerun()
state.report()

if not report.studies and not report.across:
    presets.empty_state("No preset study in the store yet (a custom grid has no paper to be judged against).",
                        [presets.DEFAULT])
    state.sync()
    st.stop()

counts = report.counts()
tables = sum(f.verdict is None for s in report.studies for f in s.findings)
for column, (name, n) in zip(st.columns(4), [*counts.items(), ("tables without a verdict", tables)]):
    column.metric(name.capitalize(), n)

shown = 0
for part in report.studies:
    listing = part.listing
    kept = [f for f in part.findings if findings.shown(f, verdict)]
    if study not in (None, listing.id) or (not kept and verdict != "any"):
        continue
    st.subheader(f"Study #{listing.id}: {listing.name}")
    st.caption(f"{listing.origin} · {listing.kind} · seeds {', '.join(map(str, part.seeds)) or 'none yet'} · "
               f"{listing.total} jobs · spec hash `{part.spec_hash[:12]}`")
    if not part.findings:
        st.info("No succeeded job of this study has measured what its findings need yet.")
    for i, finding in enumerate(kept):
        findings.card(finding, [listing.id], f"findings.{listing.id}.{i}", part.seeds)
    shown += len(kept)

across = [f for f in report.across if findings.shown(f, verdict)
          and (study is None or study in findings.studies_named(f))]
if across:
    st.subheader("Across studies")
    for i, finding in enumerate(across):
        findings.card(finding, findings.studies_named(finding), f"findings.across.{i}")
shown += len(across)
if not shown:
    st.info("No finding matches these filters.")

state.sync()
