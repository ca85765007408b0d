"""Previews for the New study page, queued as lone jobs ahead of studies and read back as plain data:
a data set's (kind `preview`), and a weights file's network (kind `import`: the job a study from that
file runs first, so a study queued after its preview reuses it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Engine, select

from backend.specs import canonical_json, spec_hash
from backend.specs.classes import check_classes
from backend.specs.pretrained import NetworkFile
from backend.specs.preview import DataPreviewSpec
from backend.specs.roots import check_data_roots
from db.queue import Queue
from db.schema import SUCCEEDED, ArrayRecord, Job, Result
from db.session import get_engine, session_scope

# Ahead of every study job: the user is waiting on the page for it.
PREVIEW_PRIORITY = 100


def request_preview(queue: Queue, spec: DataPreviewSpec) -> int:
    """The preview job of `spec`: an earlier one of the same spec (done, queued or running), or a new one.
    A folder outside the data roots, or a class id its source lacks, is a SpecError, and nothing is queued."""
    check_data_roots(spec)
    check_classes(spec)  # after the roots: a folder's classes are listed
    return queue.enqueue("preview", canonical_json(spec), spec_hash(spec), priority=PREVIEW_PRIORITY)


def request_import(queue: Queue, network: NetworkFile) -> int:
    """The import job of a pinned weights file (its sha256 and input recorded, as a study pins it, so
    the study's own import is this job): an earlier one of the same spec, or a new one."""
    if network.sha256 is None or network.input is None:
        raise ValueError("pin the weights file first (backend.specs.pretrained.pin_network)")
    check_data_roots(network)
    return queue.enqueue("import", canonical_json(network), spec_hash(network), priority=PREVIEW_PRIORITY)


@dataclass(frozen=True)
class DataPreview:
    """A finished preview, as stored by the worker."""

    classes: list[str]
    counts: dict[str, list[int]]  # "train"/"test" -> images per class, in class order
    image_shape: tuple[int, int, int]  # (C, H, W)
    samples: np.ndarray  # uint8 (H, W, C): one row of sample images per class of `sample_classes`
    sample_classes: list[str]
    halves: dict[int, dict[str, Any]]  # seed -> {"A": names, "B": names} or {"error": why}


@dataclass(frozen=True)
class NetworkSummary:
    """A finished import, as stored by the worker: the network the study will transfer from."""

    units: dict[str, int]  # unit -> parameters, in the network's order
    parameters: int
    classes: int  # outputs of its classifier
    input: dict[str, Any]  # NetworkInput's fields: size, channels, mean, std
    file: dict[str, Any]  # path, format, sha256


@dataclass(frozen=True)
class PreviewJob:
    id: int
    status: str
    progress: float
    message: str
    error: str | None
    preview: DataPreview | None  # a data preview, once it has succeeded
    network: NetworkSummary | None = None  # an import, once it has succeeded


class Previews:
    def __init__(self, engine: Engine | None = None):
        self.engine = engine or get_engine()

    def get(self, job_id: int) -> PreviewJob | None:
        """A preview job's state, with its preview once it succeeded; None when there is no such job."""
        with session_scope(self.engine) as s:
            job = s.get(Job, job_id)
            if job is None:
                return None
            preview = network = None
            source = job.result_of or job.id
            results = ({r.name: r for r in s.scalars(select(Result).where(Result.job_id == source))}
                       if job.status == SUCCEEDED else {})
            if results and job.kind == "import":
                network = NetworkSummary(
                    units={k: int(v) for k, v in results["units"].table.items()},
                    parameters=int(results["parameters"].value), classes=int(results["classes"].value),
                    input=results["input"].table, file=results["file"].table)
            elif results:
                samples = s.scalar(select(ArrayRecord).where(ArrayRecord.job_id == source,
                                                             ArrayRecord.name == "samples"))
                classes = results["classes"].table
                preview = DataPreview(
                    classes=list(classes["names"]), counts={k: list(classes[k]) for k in ("train", "test")},
                    image_shape=tuple(int(results[k].value) for k in ("channels", "height", "width")),
                    samples=samples.to_numpy(), sample_classes=list(results["sample_classes"].table),
                    halves={int(seed): halves for seed, halves in results["halves"].table.items()})
            return PreviewJob(job.id, job.status, job.progress, job.message, job.error, preview, network)
