"""The dashboard's queries on a big store: one study of 10,000 jobs and 2,000,000 metric rows, in
SQLite and in PostgreSQL, in one run.

    .venv/bin/python bench/store.py [--smoke] [--sqlite PATH] [--postgres URL]

Builds each store through the worker's own writer (db.outputs.store_outputs: results, curves and
the scores row of every finished job); the SQLite file is reused when it exists with the right size,
PostgreSQL is a fresh database on a server the bench starts (bench/postgres.py), or on `--postgres`.
Times each query the pages make, cold (first call) and warm (best of 3), against the references of
the same run: the same answers the naive way, every row loaded, then filtered in Python.
--smoke: 200 jobs and 400 metric rows, SQLite and (with --postgres) PostgreSQL, a few seconds.

Last line: RESULT sqlite_scores_ms=.. sqlite_slowest_ms=.. postgres_scores_ms=.. postgres_slowest_ms=..
(scores: the layer figure's query, warm; slowest: the slowest page query, warm; nan: not measured.)
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402

from backend.jobs import NETWORK_KINDS  # noqa: E402
from bench.postgres import NoPostgres, postgres_database  # noqa: E402
from db.outputs import store_outputs  # noqa: E402
from db.results import Results  # noqa: E402
from db.schema import Job, Metric, Result, Study  # noqa: E402
from db.session import get_engine, session_scope  # noqa: E402
from db.studies import Studies  # noqa: E402

KEYS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr")
SCALARS = ("final_accuracy", "best10_accuracy", "train_seconds", "images_per_second")
TREATMENTS = ("baseA", "baseB", "AnB", "BnB", "AnB+", "BnB+", "random")
FULL, SMOKE = (10_000, 40), (200, 2)  # (jobs, epochs): 5 curves of `epochs` points per job


def build(engine, jobs: int, epochs: int) -> int:
    """One study of `jobs` transfer jobs, 80% succeeded with their outputs, the rest failed or queued."""
    rng = random.Random(0)
    with session_scope(engine) as s:
        study = Study(name="big", preset="bench", spec={"study": "bench"}, spec_hash="bench")
        s.add(study)
        s.flush()
        s.execute(insert(Job), [{"study_id": study.id, "kind": "transfer", "spec": "{}", "spec_hash": f"{i:064x}",
                                 "labels": {"seed": i % 5, "treatment": TREATMENTS[i % 7], "n": i % 8},
                                 "status": rng.choice(["succeeded"] * 8 + ["failed", "queued"]), "progress": 1.0}
                                for i in range(jobs)])
        study_id = study.id
        finished = s.scalars(select(Job.id).where(Job.study_id == study_id, Job.status == "succeeded")).all()
        everyone = s.scalars(select(Job.id).where(Job.study_id == study_id)).all()
    for chunk in range(0, len(everyone), 500):
        with session_scope(engine) as s:
            for job_id in everyone[chunk:chunk + 500]:
                curves = [(k, e, rng.random()) for k in KEYS for e in range(1, epochs + 1)]
                if job_id in finished:
                    store_outputs(s, job_id, {name: rng.random() for name in SCALARS}, curves, [], None, None)
                else:  # a failed or unfinished job streamed its curves, and has no results
                    s.execute(insert(Metric), [{"job_id": job_id, "key": k, "step": e, "value": v}
                                               for k, e, v in curves])
    return study_id


def timed(fn, repeats: int = 3) -> tuple[float, float]:
    started = time.perf_counter()
    fn()
    cold = time.perf_counter() - started
    warm = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - started)
    return cold, min(warm)


def study_of_size(engine, jobs: int, epochs: int) -> int:
    with session_scope(engine) as s:
        study_id = s.scalar(select(Study.id).where(Study.name == "big"))
        metrics = s.scalar(select(func.count()).select_from(Metric))
    if study_id is not None and metrics == jobs * epochs * len(KEYS):
        return study_id
    if study_id is not None:
        raise SystemExit(f"{engine.url}: holds another size of the bench study; remove it or pass another path")
    started = time.perf_counter()
    study_id = build(engine, jobs, epochs)
    print(f"built {jobs:,} jobs, {jobs * epochs * len(KEYS):,} metric rows in {time.perf_counter() - started:.0f} s")
    return study_id


def bench_store(url: str, jobs: int, epochs: int) -> dict[str, float]:
    """Time the pages' queries on the store at `url`; {"scores": layer query, "slowest": slowest page query} in s."""
    engine = get_engine(url)
    study_id = study_of_size(engine, jobs, epochs)
    results, studies = Results(engine), Studies(engine)
    some_jobs = list(range(1, 101))
    queries = {
        "studies list with counts": lambda: studies.listing(),
        "jobs page, study filter": lambda: results.jobs(study_id=study_id, limit=100),
        "jobs page, status filter, page 6": lambda: results.jobs(study_id=study_id, status="failed", offset=500),
        "study scores, layer figure": lambda: results.study_scores(study_id, kinds=NETWORK_KINDS),
        "study scores, every job": lambda: results.study_scores(study_id),
        "curves of 100 jobs": lambda: results.curves(some_jobs),
        "workers": lambda: results.workers(),
    }
    warm_of = {}
    for name, fn in queries.items():
        cold, warm_of[name] = timed(fn)
        print(f"{name:40s} cold {cold * 1000:8.1f} ms   warm {warm_of[name] * 1000:8.1f} ms")

    def every_job_filtered():  # the jobs page's reference
        with session_scope(engine) as s:
            rows = s.execute(select(Job)).scalars().all()
            return [r for r in rows if r.status == "failed"][500:600]

    def every_result_pivoted():  # the layer figure's reference: every job and result row, then pandas
        with session_scope(engine) as s:
            jobs_ = [j for j in s.execute(select(Job)).scalars().all()
                     if j.study_id == study_id and j.status == "succeeded" and j.kind in NETWORK_KINDS]
            rows = s.execute(select(Result.job_id, Result.name, Result.value)).all()
        long = pd.DataFrame(rows, columns=["job", "name", "value"]).dropna()
        wide = long.pivot(index="job", columns="name", values="value")
        labels = pd.DataFrame([{"job": j.id, **j.labels, "spec_hash": j.spec_hash} for j in jobs_])
        return labels.merge(wide, left_on="job", right_index=True)

    for name, fn in (("reference: every job, filtered", every_job_filtered),
                     ("reference: every result, pivoted", every_result_pivoted)):
        cold, warm = timed(fn, repeats=1)
        print(f"{name:40s} cold {cold * 1000:8.1f} ms   warm {warm * 1000:8.1f} ms")
    engine.dispose()
    return {"scores": warm_of["study scores, layer figure"], "slowest": max(warm_of.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="200 jobs: what make test runs")
    parser.add_argument("--sqlite", type=Path, help="the SQLite file (default var/bench-store.db; smoke: a temp file)")
    parser.add_argument("--postgres", help="a server's admin URL: use a fresh database there, start none")
    args = parser.parse_args()
    jobs, epochs = SMOKE if args.smoke else FULL
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() if args.smoke else nullcontext(None) as scratch:
        path = args.sqlite or (Path(scratch) / "store.db" if scratch else
                               Path(__file__).resolve().parents[1] / "var" / "bench-store.db")
        print(f"SQLite ({path}):")
        figures["sqlite"] = bench_store(f"sqlite:///{path}", jobs, epochs)
    if args.smoke and not args.postgres:
        print("PostgreSQL: not measured (--smoke starts no server; pass --postgres URL)")
    else:
        try:
            with postgres_database(args.postgres) as url:
                print("PostgreSQL:")
                figures["postgres"] = bench_store(url, jobs, epochs)
        except NoPostgres as exc:
            print(f"PostgreSQL: not measured ({exc})")
    print("RESULT " + " ".join(f"{backend}_{key}_ms={figures.get(backend, {}).get(key, math.nan) * 1000:.1f}"
                                for backend in ("sqlite", "postgres") for key in ("scores", "slowest")))


if __name__ == "__main__":
    main()
