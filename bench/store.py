"""The dashboard's queries on a big store: a study of 10,000 jobs and 1,000,000 metric rows.

    .venv/bin/python bench/store.py [--url sqlite:///var/bench-store.db]

Builds the database once (reused when it exists with the right size), then times each query the
pages make, cold (first call) and warm (best of 3). Reference: the same jobs listing done the naive
way, loading every job row then filtering in pandas. Last line:
RESULT seconds=<slowest page query, warm>
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, insert, select  # noqa: E402

from db.results import Results  # noqa: E402
from db.schema import Job, Metric, Result, Study  # noqa: E402
from db.session import get_engine, session_scope  # noqa: E402

JOBS, EPOCHS, KEYS = 10_000, 40, ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr")
TREATMENTS = ("baseA", "baseB", "AnB", "BnB", "AnB+", "BnB+", "random")


def build(engine) -> int:
    with session_scope(engine) as s:
        study = Study(name="big", preset="bench", spec={"study": "bench"}, spec_hash="bench")
        s.add(study)
        s.flush()
        rng = random.Random(0)
        jobs = [{"study_id": study.id, "kind": "transfer", "spec": "{}", "spec_hash": f"{i:064x}",
                 "labels": {"seed": i % 5, "treatment": TREATMENTS[i % 7], "n": i % 8},
                 "status": rng.choice(["succeeded"] * 8 + ["failed", "queued"]), "progress": 1.0}
                for i in range(JOBS)]
        s.execute(insert(Job), jobs)
        ids = s.scalars(select(Job.id).where(Job.study_id == study.id)).all()
        results = [{"job_id": j, "name": name, "value": rng.random()} for j in ids
                   for name in ("final_accuracy", "best10_accuracy", "train_seconds", "images_per_second")]
        s.execute(insert(Result), results)
        for chunk in range(0, len(ids), 1000):
            s.execute(insert(Metric), [{"job_id": j, "key": k, "step": e, "value": rng.random()}
                                       for j in ids[chunk:chunk + 1000] for k in KEYS for e in range(1, EPOCHS + 1)])
        return study.id


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


def main() -> None:
    parser = argparse.ArgumentParser()
    default = Path(__file__).resolve().parents[1] / "var" / "bench-store.db"
    parser.add_argument("--url", default=f"sqlite:///{default}")
    args = parser.parse_args()
    engine = get_engine(args.url)
    with session_scope(engine) as s:
        study_id = s.scalar(select(Study.id).where(Study.name == "big"))
        metrics = s.scalar(select(func.count()).select_from(Metric))
    if study_id is None or metrics < JOBS * EPOCHS * len(KEYS):
        started = time.perf_counter()
        study_id = build(engine)
        print(f"built {JOBS:,} jobs, {JOBS * EPOCHS * len(KEYS):,} metric rows in {time.perf_counter() - started:.0f} s")
    results = Results(engine)
    some_jobs = list(range(1, 101))
    queries = {
        "studies list with counts": lambda: results.studies(),
        "jobs page, study filter": lambda: results.jobs(study_id=study_id, limit=100),
        "jobs page, status filter, page 6": lambda: results.jobs(study_id=study_id, status="failed", offset=500),
        "study scores (every job)": lambda: results.study_scores(study_id),
        "curves of 100 jobs": lambda: results.curves(some_jobs),
        "workers": lambda: results.workers(),
    }
    slowest = 0.0
    for name, fn in queries.items():
        cold, warm = timed(fn)
        slowest = max(slowest, warm)
        print(f"{name:36s} cold {cold * 1000:8.1f} ms   warm {warm * 1000:8.1f} ms")

    def naive():  # the reference: everything loaded, then filtered in Python
        with session_scope(engine) as s:
            rows = s.execute(select(Job)).scalars().all()
            return [r for r in rows if r.status == "failed"][5000:5100]

    cold, warm = timed(naive, repeats=1)
    print(f"{'reference: load all jobs, filter':36s} cold {cold * 1000:8.1f} ms   warm {warm * 1000:8.1f} ms")
    print(f"RESULT seconds={slowest:.3f}")


if __name__ == "__main__":
    main()
