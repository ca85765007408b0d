"""What a finished job leaves in the store: named scalars and small tables, curves, arrays, artifact
records, and its scores row (its scalars in one row of `job_scores`, from which the pages read a
study's scores without pivoting the results table). Written all together when the job completes,
cleared all together when it is run again, moved all together when its study is deleted."""

from __future__ import annotations

import json
from typing import Any, Iterable

import numpy as np
from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from db.schema import ArrayRecord, Artifact, JobScores, Metric, Result, array_record

OUTPUT_TABLES = (Result, Metric, ArrayRecord, Artifact, JobScores)


def clear_outputs(s: Session, job_id: int) -> None:
    for table in OUTPUT_TABLES:
        s.execute(delete(table).where(table.job_id == job_id))


def store_outputs(s: Session, job_id: int, results: dict[str, float], metrics: Iterable[tuple[str, int, float]],
                  artifacts: Iterable[dict[str, Any]], tables: dict[str, Any] | None,
                  arrays: dict[str, np.ndarray] | None) -> None:
    """Replace whatever `job_id` held (a retried attempt may have left curves) with one set."""
    clear_outputs(s, job_id)
    scalars = {name: float(value) for name, value in results.items()}
    s.execute(insert(Result), [{"job_id": job_id, "name": k, "value": v} for k, v in scalars.items()]
              + [{"job_id": job_id, "name": k, "value": None, "table": v} for k, v in (tables or {}).items()])
    s.execute(insert(JobScores), [{"job_id": job_id, "scores": scores_text(scalars)}])
    rows = [{"job_id": job_id, "key": k, "step": step, "value": float(v)} for k, step, v in metrics]
    if rows:
        s.execute(insert(Metric), rows)
    s.add_all(Artifact(job_id=job_id, **a) for a in artifacts)
    s.add_all(array_record(job_id, name, a) for name, a in (arrays or {}).items())


def scores_text(scalars: dict[str, float]) -> str:
    """A scores row's text: name -> value, NaN and infinities kept (Python's json tokens)."""
    return json.dumps(scalars, separators=(",", ":"))


def parse_many(texts: list[str]) -> list[Any]:
    """Parse many JSON texts at once: one call of the C parser over them all, several times faster
    than a call per text at a study's 10,000 rows."""
    return json.loads("[" + ",".join(texts) + "]")
