"""The worker: the one bridge between the queue and the engine.

It claims a job, runs it with the engine, streams progress and per-epoch metrics, saves an epoch
state after every epoch (so a crashed job resumes where it stopped), writes the final checkpoint
atomically, stores the results, and heartbeats throughout. A cancel request or SIGTERM stops the
run at the next step: cancelled jobs are marked so, and on SIGTERM the job goes back to the queue.

Between jobs it holds the last few networks it trained or read, and the last data sets it loaded, in
memory, and claims the jobs that read those networks first (within a priority: db.claims), so a
network's transfers and probes run beside it without reading its checkpoint or its data again.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

import torch

from backend import settings
from backend.checkpoints import (
    INIT, bare_module, load_train_state, save_checkpoint, save_init, save_train_state, sha256_of, sidecar_path,
)
from backend.data import TaskData, load_task
from backend.gpus import describe_device, device_memory
from backend.probes.representations import RepresentationCache
from backend.provenance import environment
from backend.recent import LeastRecentlyUsed
from backend.jobs import JOB_KINDS, JobOutput, parse_job, runner
from backend.runners import checkpoint_meta, epoch_metrics
from backend.specs import DataSpec, FolderSource, SpecError, TrainJobSpec, TransferJobSpec, canonical_json, spec_hash
from backend.specs.memory import check_fits
from backend.specs.roots import check_data_roots
from backend.train import Trained, resolve_device
from backend.transfer import SourceNet
from db.claims import ClaimCycle, IdleBackoff
from db.queue import ClaimedJob, Queue
from db.sequential import advance_all
from db.session import StoreError

log = logging.getLogger("transferlab.worker")


class JobStopped(Exception):
    """Raised from the progress callback to stop a run between steps."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason  # "cancelled" | "stopping" | "lease lost"


class Worker:
    def __init__(self, queue: Queue, device: str = "auto", worker_id: str | None = None,
                 lease_seconds: float = 30.0, heartbeat_seconds: float | None = None,
                 poll_seconds: float = 1.0, artifacts: Path | None = None,
                 held_networks: int = 4, held_data_bytes: int = 1 << 30):
        self.queue = queue
        self.device = resolve_device(device)
        self.memory_bytes = device_memory(self.device)  # the preflight's limit: this device's memory
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease_seconds = lease_seconds
        # A lease outlives about two missed heartbeats before another worker may take the job.
        self.heartbeat_seconds = heartbeat_seconds or lease_seconds / 2.5
        self.poll_seconds = poll_seconds
        # Idle: ask again after `poll_seconds`, then less and less often, up to 8 times that.
        self.idle = IdleBackoff(poll_seconds, 8 * poll_seconds)
        self.artifacts = artifacts or settings.artifacts_dir()
        self.stopping = threading.Event()
        # Spec hash -> (the checkpoint's recorded sha256, the network), on the CPU: a study reads a
        # network right after training it (its transfers, its probes). 0 holds none and prefers none.
        self.networks = LeastRecentlyUsed(held_networks)
        # DataSpec JSON -> TaskData (uint8 images, never written to by the engine), by bytes held.
        self.tasks = LeastRecentlyUsed(held_data_bytes, size=_task_bytes)
        # Each network's CKA features, once per probe set: shared with every worker through the artifacts.
        self.representations = RepresentationCache(self.artifacts / "representations")

    # ------------------------------------------------------------ loop

    def serve(self, once: bool = False, max_jobs: int | None = None, idle_exit: float | None = None,
              spread_start: bool = False) -> int:
        """Run jobs until stopped: `once` runs at most one, `idle_exit` stops after that many idle
        seconds, `spread_start` first waits a random fraction of a poll (a worker of a fleet started
        at once: IdleBackoff.start). Returns the number of jobs run."""
        self.queue.register_worker(self.worker_id, socket.gethostname(), describe_device(self.device),
                                   {**environment(), "cuda": torch.version.cuda or ""})
        if spread_start:
            self.stopping.wait(self.idle.start())
        ran, idle_since = 0, time.monotonic()
        # Nothing to run: maybe a dead worker holds jobs, a cycle blocks them, or a study's seed
        # finished while no worker was there to add the next.
        cycle = ClaimCycle(self.queue, self.poll_seconds, self.lease_seconds, maintain=self.add_seeds)
        while not self.stopping.is_set() and (max_jobs is None or ran < max_jobs):
            try:
                job = cycle.next(lambda: self.queue.claim(self.worker_id, self.lease_seconds,
                                                          prefer=self.networks.keys()))
            except StoreError:  # the database is briefly unreachable: wait and try again
                log.warning("cannot reach the store; retrying in %.0f s", self.poll_seconds, exc_info=True)
                self.stopping.wait(self.poll_seconds)
                continue
            if job is None:
                if once or (idle_exit is not None and time.monotonic() - idle_since > idle_exit):
                    break
                self.queue.worker_seen(self.worker_id)
                self.stopping.wait(self.idle.next())
                continue
            self.idle.reset()
            ran += self.run(job) != "queued"  # a job given back on SIGTERM was not run
            self.add_seeds()
            idle_since = time.monotonic()
            if once:
                break
        return ran

    def add_seeds(self) -> None:
        """Queue the next seed of every sequential-seeds study that has finished its seeds and is not
        yet as precise as it asks (db.sequential); a failure here is logged, never ends the loop."""
        try:
            for study_id in advance_all(self.queue):
                log.info("study %d: the next seed is queued", study_id)
        except Exception:  # noqa: BLE001 - a bad evaluation must not stop the worker from running jobs
            log.exception("could not evaluate the studies' sequential seeds")

    def stop_on_signals(self) -> None:
        """SIGTERM/SIGINT: stop at the next step and give the current job back to the queue."""
        def handler(signum, _frame):
            log.info("signal %s: stopping after the current step", signum)
            self.stopping.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    # ------------------------------------------------------------ one job

    def run(self, job: ClaimedJob) -> str:
        """Run one claimed job to an end state; every error ends on the job, never in the loop."""
        try:
            spec = parse_job(job.kind, job.spec)
            check_data_roots(spec)  # a spec queued around the submit path reads no folder it may not
        except SpecError as exc:
            return self.queue.fail(job.id, self.worker_id, f"invalid job spec: {exc}")
        if spec_hash(spec) != job.spec_hash:
            return self.queue.fail(job.id, self.worker_id, "spec hash does not match the spec (edited by hand?)")
        if self.queue.link_to_earlier(job.id, self.worker_id, job.spec_hash):
            return "succeeded"
        beat = _Heartbeat(self, job)
        beat.start()
        try:
            check_fits(spec, limit=self.memory_bytes, device=f"this worker's {self.device}")  # not the submitter's
            kind = JOB_KINDS[job.kind]
            networks = {key: self._network(key) for key in kind.networks(spec)}
            options = (self._resume_options(job, spec, beat) if kind.trains
                       else {"representations": self.representations})
            if kind.results(spec):
                options["results"] = self.queue.scalars_of(kind.results(spec))
            output = runner(job.kind)(spec, networks, self.device, beat.progress, load=self._task, **options).checked()
            self._finish(job, spec, output, options)
            return "succeeded"
        except JobStopped as stop:
            if stop.reason == "cancelled":
                self.queue.mark_cancelled(job.id, self.worker_id)
                return "cancelled"
            if stop.reason == "stopping":
                self.queue.release(job.id, self.worker_id, "worker stopped; job requeued")
                return "queued"
            return "lost"
        except SpecError as exc:  # bad input: retrying will not help
            return self.queue.fail(job.id, self.worker_id, str(exc))
        except (MemoryError, torch.OutOfMemoryError) as exc:  # the job, not the worker: it serves the next one
            log.warning("job %s ran out of memory", job.id)
            return self.queue.fail(job.id, self.worker_id, f"out of memory on {self.device}: shrink the network or the "
                                   f"batch, or run it on a larger device ({str(exc).splitlines()[0][:200]})")
        except Exception as exc:  # possibly transient (out of memory, a full disk): retry
            log.exception("job %s failed", job.id)
            detail = "".join(traceback.format_exception_only(exc)).strip()
            return self.queue.fail(job.id, self.worker_id, detail, retry=True)
        finally:
            beat.stop()

    def _resume_options(self, job: ClaimedJob, spec, beat: _Heartbeat) -> dict[str, Any]:
        """A training job saves its state after every epoch and resumes from the last one saved."""
        state_path = self._job_dir(job.id) / "state.safetensors"
        resume = load_train_state(state_path, job.spec_hash)
        if resume is not None:
            beat.report(resume.epoch / spec.train.epochs_run, f"resumed after epoch {resume.epoch}")

        def on_epoch(state) -> None:
            save_train_state(state_path, state, job.spec_hash)
            self.queue.add_metrics(job.id, epoch_metrics(state.result.history[-1]))

        options = {"on_epoch": on_epoch, "resume": resume}
        if isinstance(spec, TrainJobSpec):  # trained from scratch: keep its random init, theta_r
            options["on_init"] = lambda trained: self._save_init(job, spec, trained, keep=resume is not None)
        return options

    def _save_init(self, job: ClaimedJob, spec: TrainJobSpec | TransferJobSpec, trained: Trained,
                   keep: bool = True) -> Path:
        """The network's weights before its first step, written at the run's first start: a run
        resumed from an epoch state keeps that file; a fresh start (a re-run) writes it anew."""
        path = self._job_dir(job.id) / "init.safetensors"
        try:  # a file left by another job of this id (a store started afresh) is not this run's
            kept = keep and path.exists() and json.loads(sidecar_path(path).read_text())["spec_hash"] == job.spec_hash
        except (OSError, ValueError, KeyError):
            kept = False
        if not kept:
            meta = {k: v for k, v in checkpoint_meta(spec, trained).items() if k != "metrics"}
            save_init(path, trained.init, {**meta, "job": job.id, "device": str(self.device)})
        return path

    def _network(self, key: str) -> SourceNet:
        """The network a job reads, from the checkpoint of a finished run of the job `key`, its bytes
        checked against the digest recorded when it was written; or the one this worker holds, when it
        wrote or checked those very bytes (the store records the same digest) and the file is still there."""
        files = self.queue.network_files(key)
        if "checkpoint" not in files:
            raise SpecError(f"no finished run of the network {key[:12]} has a checkpoint", field="source")
        relative, sha256, job = files["checkpoint"]
        path = self.artifacts / relative
        if not path.exists():
            raise SpecError(f"the checkpoint {str(path)!r} of job {job} is missing from the artifacts folder: "
                            f"re-run job {job}", field="source")
        held = self.networks.get(key)
        if held is not None and held[0] == sha256:
            return held[1]
        network = SourceNet.load(str(path), sha256, files.get(INIT, (None, None))[1])
        self.networks.put(key, (sha256, network))
        return network

    def _hold_trained(self, job: ClaimedJob, spec: TrainJobSpec | TransferJobSpec, trained: Trained,
                      recorded: dict[str, dict[str, Any]]) -> None:
        """Keep the network just stored as `SourceNet.load` would read it back: the weights written
        (bare module, contiguous, on the CPU), its theta_r file read on demand against its digest."""
        state = {k: v.detach().to("cpu", memory_format=torch.contiguous_format, copy=True)
                 for k, v in bare_module(trained.model).state_dict().items()}
        init = recorded.get(INIT)
        network = SourceNet(state, trained.normalization, spec.model, trained.image_shape, trained.n_classes,
                            str(self.artifacts / init["path"]) if init else None, init["sha256"] if init else None,
                            init_drawn=trained.init_drawn)
        self.networks.put(job.spec_hash, (recorded["checkpoint"]["sha256"], network))

    def _task(self, data: DataSpec) -> TaskData:
        """A job's data, loaded once while the worker holds it. A folder is read afresh each time: it may
        change under a long-lived worker, and its disk cache checks the folder's listing (about 0.1 s)."""
        if isinstance(data.source, FolderSource):
            return load_task(data)
        key = canonical_json(data)
        task = self.tasks.get(key)
        if task is None:
            task = load_task(data)
            self.tasks.put(key, task)
        return task

    def _finish(self, job: ClaimedJob, spec, output: JobOutput, options: dict[str, Any]) -> None:
        folder = self._job_dir(job.id)
        artifacts, scalars = [], dict(output.scalars)
        if output.network is not None:
            init = None
            if output.network.init is not None:  # a train job's is there already, unless deleted mid-run
                init = self._save_init(job, spec, output.network)
            # The sidecar names the init file beside it, so `SourceNet.load` finds it.
            path = save_checkpoint(folder / "model", output.network.model, {
                **checkpoint_meta(spec, output.network), "job": job.id, "device": str(self.device),
                **({"init": init.name} if init else {})})
            artifacts.append(self._artifact("checkpoint", path))
            if init:
                artifacts.append(self._artifact(INIT, init))
            if "resume" in options:  # a trained network (an imported one has no epochs)
                resume = options["resume"]
                scalars["resumed_from_epoch"] = resume.epoch if resume else 0
        tables = {**output.tables, "provenance": {
            **environment(), "device": str(self.device), "worker": self.worker_id,
            "data_fingerprint": output.tables.get("data_fingerprint")}}
        if self.queue.complete(job.id, self.worker_id, scalars, output.curves, artifacts, tables, output.arrays):
            (folder / "state.safetensors").unlink(missing_ok=True)
            if output.network is not None:
                self._hold_trained(job, spec, output.network, {a["kind"]: a for a in artifacts})

    def _artifact(self, kind: str, path: Path) -> dict[str, Any]:
        return {"kind": kind, "path": str(path.relative_to(self.artifacts)), "sha256": sha256_of(path),
                "bytes": path.stat().st_size}

    def _job_dir(self, job_id: int) -> Path:
        return self.artifacts / f"job-{job_id}"


def _task_bytes(task: TaskData) -> int:
    return sum(t.element_size() * t.nelement() for t in (task.train.x, task.train.y, task.test.x, task.test.y))


class _Heartbeat:
    """Extends the lease every interval from a thread, carrying the latest progress; learns of
    cancel requests and lost leases, which the progress callback turns into a stop."""

    def __init__(self, worker: Worker, job: ClaimedJob):
        self.worker, self.job = worker, job
        self.done = threading.Event()
        self.stop_reason: str | None = None
        self.latest: tuple[float, str] = (0.0, "starting")
        self.thread = threading.Thread(target=self._loop, daemon=True, name=f"heartbeat-{job.id}")

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=10)

    def report(self, fraction: float, message: str) -> None:
        self.latest = (fraction, message)

    def progress(self, fraction: float, message: str) -> None:
        """The engine's progress callback: record, and stop here if asked to."""
        self.report(fraction, message)
        if self.worker.stopping.is_set():
            raise JobStopped("stopping")
        if self.stop_reason:
            raise JobStopped(self.stop_reason)

    def _loop(self) -> None:
        w = self.worker
        while not self.done.wait(w.heartbeat_seconds):
            try:
                lease = w.queue.heartbeat(self.job.id, w.worker_id, w.lease_seconds, *self.latest)
            except Exception:  # the database is briefly unreachable: try again next beat
                log.warning("heartbeat for job %s failed", self.job.id, exc_info=True)
                continue
            if not lease.held:
                self.stop_reason = "lease lost"
            elif lease.cancel_requested:
                self.stop_reason = "cancelled"
