"""Submitting a study: expand it into its job DAG and queue that in one transaction."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from sqlalchemy import select

from backend.jobs import JOB_KINDS, kind_of, parse_job
from backend.specs import Spec, SpecError, canonical_json, set_field, spec_hash
from backend.specs.base import shape_hash
from backend.specs.classes import check_classes
from backend.specs.memory import check_fits, check_patches
from backend.specs.pretrained import pin_files
from backend.specs.roots import check_data_roots
from backend.specs.training import check_batch_norm
from backend.studies import STUDY_KINDS, expand
from backend.studies.plan import PlannedJob
from db.queue import NewJob, Queue
from db.schema import Job
from db.session import session_scope


def check_study(study: Spec, plan: list[PlannedJob] | None = None) -> None:
    """What the spec's validation cannot know: that its data folders lie inside the data roots, that
    every task's class ids exist in its source (listed without loading an image; folders only once
    inside the roots), and that each network it trains fits in a worker's memory; and, kept out of
    parse so that stored job specs still read, that a BatchNorm network trains on batches of 2 or more.
    A SpecError naming the field otherwise. `plan`: the study's expansion, when the caller has it."""
    check_data_roots(study)
    pin_files(study)  # every weights file readable, and the same bytes as any digest the study records
    check_batch_norm(study)
    plan = expand(study) if plan is None else plan
    check_classes(study, ((job.spec, job.labels) for job in plan), dict(STUDY_KINDS[study.study].class_fields))
    for job in plan:
        if JOB_KINDS[job.kind].trains:
            check_patches(job.spec)
            check_fits(job.spec)


def check_job(spec: Spec, kind: str | None = None) -> Spec:
    """check_study's checks for one job outside a study (`python -m backend train`, a clone with edits),
    for any job kind: the same data roots, weights files, batch, class ids and, for a job that trains a
    network, patches and memory; so what trains or is cloned here also submits. Returns the spec with
    its weights files pinned (as a study records them). `kind`: the job's kind, when the caller has it."""
    check_data_roots(spec)
    spec = pin_files(spec)
    check_batch_norm(spec)
    check_classes(spec)
    if JOB_KINDS[kind or kind_of(spec)].trains:
        check_patches(spec)
        check_fits(spec)
    return spec


def plan_size(study: Spec) -> dict[str, int]:
    """How many jobs of each kind submitting `study` would create."""
    kinds = {job.key: job.kind for job in expand(study)}  # identical jobs are queued once
    return dict(sorted(Counter(kinds.values()).items()))


def planned_shapes(study: Spec) -> list[str]:
    """The shape of each job submitting `study` would create (identical jobs once), for estimates."""
    return list(_shapes(expand(study)).values())


def _shapes(jobs: list[PlannedJob]) -> dict[str, str]:
    """spec hash -> shape of each job; a job's dependencies come before it, so a probe naming its
    networks by hash gets their shapes."""
    shapes: dict[str, str] = {}
    for job in jobs:
        shapes.setdefault(job.key, shape_hash(job.spec, shapes))
    return shapes


def submit_study(queue: Queue, study: Spec, name: str | None = None, preset: str | None = None,
                 priority: int = 0) -> int:
    """Queue every job of `study` (any study kind); returns the study id. Identical jobs are queued once.
    A data folder outside the allowed data roots, or a network that cannot fit in a worker's memory,
    is a SpecError, and nothing is queued. Weights files are pinned first: the study records their digests."""
    study = pin_files(study)
    planned = expand(study)
    check_study(study, planned)
    precision = getattr(study, "precision", None)
    progress = None if precision is None else seed_rule(precision.quantity, precision.half_width, precision.max_seeds)
    return queue.submit(name or preset or study.study, json.loads(canonical_json(study)), spec_hash(study),
                        new_jobs(planned), preset=preset, priority=priority, seed_progress=progress)


def new_jobs(planned: list[PlannedJob]) -> list[NewJob]:
    """The queue's rows of a plan; identical jobs once."""
    jobs: dict[str, NewJob] = {}
    shapes = _shapes(planned)
    for job in planned:
        jobs.setdefault(job.key, NewJob(job.key, job.kind, canonical_json(job.spec), job.key, job.labels,
                                        job.depends_on, shapes[job.key]))
    return list(jobs.values())


def seed_rule(quantity: str, half_width: float, max_seeds: int) -> dict[str, Any]:
    """A study's sequential-seeds record as first stored: the rule, nothing measured yet."""
    return {"quantity": quantity, "asked": half_width, "max_seeds": max_seeds, "state": "running"}


def clone_job(queue: Queue, job_id: int, edits: dict[str, Any]) -> int:
    """Queue a copy of `job_id` with spec fields changed, e.g. {"train.epochs": 20}. The edited spec is
    parsed and then checked as submitting a job of its kind checks it (check_job: data roots, class ids,
    batch, memory); a SpecError names the field and nothing is queued when it fails."""
    kind, text = queue.job_spec(job_id)
    spec = json.loads(text)
    for path, value in edits.items():
        set_field(spec, path, value)
    edited = check_job(parse_job(kind, spec), kind)
    return queue.clone(job_id, canonical_json(edited), spec_hash(edited))


def resolve_lab_networks(tree: Any, queue: Queue | None = None) -> Any:
    """A study dict with every lab network given by reference (`{"kind": "lab", "job": 123}`, or a spec
    hash or its first 8+ characters) replaced by the network's own job spec, read from the store, so
    the study reuses that run; an import job's reference by the weights file it imported (its spec, a
    NetworkFile), so the study reuses that import. A reference to no job, to several, or to a job that
    yields no network (a probe) is a SpecError naming it."""
    if isinstance(tree, list):
        return [resolve_lab_networks(v, queue) for v in tree]
    if not isinstance(tree, dict):
        return tree
    if tree.get("kind") == "lab" and "job" in tree and "network" not in tree:
        ref = str(tree["job"]).strip()
        with session_scope((queue or Queue()).engine) as s:
            if ref.isdigit():
                found = s.execute(select(Job.id, Job.kind, Job.spec).where(Job.id == int(ref))).all()
            elif len(ref) >= 8 and all(c in "0123456789abcdef" for c in ref):
                found = s.execute(select(Job.id, Job.kind, Job.spec).where(Job.spec_hash.startswith(ref))
                                  .where(Job.result_of.is_(None)).order_by(Job.id.desc()).limit(2)).all()
            else:
                raise SpecError(f"{ref!r} is neither a job id nor a spec hash", field="pretrained.job")
        if not found:
            raise SpecError(f"no job {ref} in this store", field="pretrained.job")
        if len({spec for _, _, spec in found}) > 1:
            raise SpecError(f"{ref} names more than one network: give more of its spec hash", field="pretrained.job")
        job_id, kind, spec = found[0]
        if kind == "import":  # its spec is the weights file, pinned: a source as it stands, its import reused
            return json.loads(spec)
        if kind not in ("train", "transfer"):
            raise SpecError(f"job {job_id} is a {kind} job, not a network: a lab network source is a network this lab "
                            "trained or imported (a train, transfer or import job, such as a study's baseA, an AnB+ "
                            "or a weights file's import)", field="pretrained.job")
        return {k: v for k, v in tree.items() if k != "job"} | {"network": json.loads(spec)}
    return {k: resolve_lab_networks(v, queue) for k, v in tree.items()}
