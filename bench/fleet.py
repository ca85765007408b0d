"""The queue at fleet size: hundreds of simulated workers against one PostgreSQL database.

    .venv/bin/python bench/fleet.py [--workers 500] [--jobs 5000] [--job-seconds 5-25] [--lease 30]
                                    [--processes 10] [--postgres URL] [--smoke]

Starts its own PostgreSQL server (bench/postgres.py; `--postgres URL` uses a fresh database on that
server instead), queues no-op jobs through Queue.submit, and runs `--workers` simulated workers as
threads spread over several processes. Each one loops as backend/worker.py's `Worker.serve` does,
through the real db.queue.Queue calls: claim (timed), heartbeat every lease/2.5 seconds while its job
"runs" (sleeps 5 to 25 s: far shorter than real jobs, so claims come often), complete with a result,
evaluate sequential seeds; and when idle: requeue expired leases, fail cycles, note itself seen, ask
again after 1 s, then less and less often up to 8 s (db.claims.IdleBackoff). The lease is the
worker's own default, 30 s. Each simulated worker has one database connection, as a worker process
of its own would. --smoke: 6 workers, 30 jobs of under a second, a lease of 1 s (make test).

When a third of the jobs are done, 10% of the workers die at once while holding a job: they stop
heartbeating and never finish. The recovery time runs from that moment until every job they held has
been finished by another worker (a lease expires, a live worker requeues it, another claims it).
At the end the database is checked: every job succeeded with exactly one result, no job was
completed twice, and no job was run by two live workers (only a dead worker's job runs again).

Last line:
RESULT workers=.. claims_per_s=.. p50_ms=.. p99_ms=.. recover_s=.. lost=.. duplicated=..
(claims_per_s: jobs claimed per second over the run; p50/p99: every claim call, each worker's first and
the empty ones included. The fleet starts at one instant, as a Slurm array does; each worker waits a
random fraction of a poll before its first claim, as `python -m backend worker` does (before that, the
500 first claims met in one herd: p99 264-326 ms). The first claims are also printed on their own line.)
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import random
import resource
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, func, select  # noqa: E402

from bench.postgres import NoPostgres, postgres_database, server_cpu_seconds  # noqa: E402
from db.claims import ClaimCycle, IdleBackoff  # noqa: E402
from db.queue import NewJob, Queue  # noqa: E402
from db.sequential import advance_all  # noqa: E402
from db.schema import SUCCEEDED, Job, Result  # noqa: E402
from db.session import get_engine, session_scope  # noqa: E402

NOOP = "noop"  # a job kind no engine runs: the bench's workers only sleep


@dataclass(frozen=True)
class Fleet:
    """The simulated fleet's sizes and timings (seconds)."""

    workers: int
    jobs: int
    processes: int
    job_seconds: tuple[float, float]  # each job sleeps a uniform time in this range
    lease: float  # a worker's lease; heartbeats every lease / 2.5, as backend/worker.py
    poll: float  # an idle worker's wait between claims, as backend/worker.py
    kill_fraction: float = 0.10
    kill_after: float = 1 / 3  # of the jobs succeeded

    @property
    def heartbeat(self) -> float:
        return self.lease / 2.5


FULL = Fleet(workers=500, jobs=5_000, processes=10, job_seconds=(5.0, 25.0), lease=30.0, poll=1.0)
SMOKE = Fleet(workers=6, jobs=30, processes=2, job_seconds=(0.2, 0.6), lease=1.0, poll=0.2)


@dataclass
class HostReport:
    """What one process's workers measured; sent back to the parent."""

    first_claim_seconds: list[float] = field(default_factory=list)  # each worker's first (also in claim_seconds)
    claim_seconds: list[float] = field(default_factory=list)  # every claim call
    empty_claim_seconds: list[float] = field(default_factory=list)  # of those, the claims that found no job
    taken_claim_seconds: list[float] = field(default_factory=list)  # and those that took one
    claimed: list[tuple[int, str]] = field(default_factory=list)  # (job, worker) per successful claim
    completed: list[tuple[int, str]] = field(default_factory=list)  # complete() returned True
    heartbeats: int = 0
    leases_lost: int = 0
    killed: set[str] = field(default_factory=set)


class SimulatedWorker:
    """One worker of the fleet: Worker.serve's loop with a sleep for the engine."""

    def __init__(self, queue: Queue, worker_id: str, fleet: Fleet, report: HostReport, lock: threading.Lock,
                 stop: threading.Event):
        self.queue, self.id, self.fleet, self.report, self.stop = queue, worker_id, fleet, report, stop
        self.record = lock  # guards `report`, shared by the process's workers
        self.state = threading.Lock()  # held while talking to the store: a kill waits for it
        self.job: int | None = None  # the job held right now
        self.dead = threading.Event()
        self.rng = random.Random(worker_id)
        self.idle = IdleBackoff(fleet.poll, 8 * fleet.poll, seed=worker_id)  # as Worker's
        self.claims = 0

    def kill(self) -> int | None:
        """Die now if holding a job between two store calls; the job held, or None (not killed)."""
        if not self.state.acquire(blocking=False):
            return None
        try:
            if self.job is None:
                return None
            self.dead.set()
            return self.job
        finally:
            self.state.release()

    def _wait(self, seconds: float) -> bool:
        """Sleep; False when this worker died or the fleet stops meanwhile."""
        self.dead.wait(seconds)
        return not self.dead.is_set() and not self.stop.is_set()

    def _claim(self):
        started = time.perf_counter()
        job = self.queue.claim(self.id, self.fleet.lease)
        elapsed = time.perf_counter() - started
        self.claims += 1
        with self.record:
            if self.claims == 1:  # the fleet's start, also reported on its own
                self.report.first_claim_seconds.append(elapsed)
            self.report.claim_seconds.append(elapsed)
            if job is None:
                self.report.empty_claim_seconds.append(elapsed)
            else:
                self.report.taken_claim_seconds.append(elapsed)
                self._taken(job)
        return job

    def _taken(self, job):
        self.report.claimed.append((job.id, self.id))
        return job

    def serve(self, registered: threading.Barrier, go) -> None:
        """Register (its connection opened), wait for the whole fleet, then Worker.serve's loop."""
        self.queue.register_worker(self.id, "fleet-bench", "cpu", {})
        registered.wait()
        go.wait()
        if not self._wait(self.idle.start()):  # as a worker started by the CLI (Worker.spread_start)
            return
        cycle = ClaimCycle(self.queue, self.fleet.poll, self.fleet.lease, maintain=lambda: advance_all(self.queue))
        while not self.stop.is_set() and not self.dead.is_set():
            with self.state:
                job = cycle.next(self._claim)
                if job is None:
                    self.queue.worker_seen(self.id)
                self.job = job.id if job else None
            if job is None:
                self._wait(self.idle.next())
                continue
            self.idle.reset()
            self._run(job.id)
            with self.state:
                if not self.dead.is_set():
                    advance_all(self.queue)

    def _run(self, job_id: int) -> None:
        """Sleep for the job's length, heartbeating; then complete it. A dead worker just stops."""
        ends = time.monotonic() + self.rng.uniform(*self.fleet.job_seconds)
        while (left := ends - time.monotonic()) > 0:
            if not self._wait(min(self.fleet.heartbeat, left)):
                return
            with self.state:
                if self.dead.is_set():
                    return
                if time.monotonic() >= ends:
                    break
                lease = self.queue.heartbeat(job_id, self.id, self.fleet.lease, progress=0.5)
                with self.record:
                    self.report.heartbeats += 1
                    self.report.leases_lost += not lease.held
                if not lease.held:
                    self.job = None
                    return
        with self.state:
            if self.dead.is_set():
                return
            done = self.queue.complete(job_id, self.id, {"noop": 1.0}, metrics=[("noop", 1, 1.0)])
            self.job = None
        with self.record:
            if done:
                self.report.completed.append((job_id, self.id))
            else:  # its lease ran out before it finished: another worker has the job
                self.report.leases_lost += 1


def host(url: str, worker_ids: list[str], fleet: Fleet, ready, go, kill, stop, out) -> None:
    """One process: its workers as threads sharing one engine with a connection per worker."""
    engine = create_engine(url, pool_size=len(worker_ids), max_overflow=0, pool_pre_ping=True)
    queue, report, lock, stopping = Queue(engine), HostReport(), threading.Lock(), threading.Event()
    workers = [SimulatedWorker(queue, w, fleet, report, lock, stopping) for w in worker_ids]
    # SQLAlchemy builds some classes on first use without a lock: build them before the threads race.
    queue.heartbeat(0, "no worker", fleet.lease)
    registered = threading.Barrier(len(workers) + 1)
    threads = [threading.Thread(target=w.serve, args=(registered, go), daemon=True) for w in workers]
    for t in threads:
        t.start()
    registered.wait()
    ready.release()
    kill.wait()
    if not stop.is_set():  # 10% of this process's workers die, each holding a job
        target = max(1, round(len(workers) * fleet.kill_fraction))
        held: list[int] = []
        for w in random.Random(0).sample(workers, len(workers)):
            if len(held) == target:
                break
            if (job := w.kill()) is not None:
                held.append(job)
                report.killed.add(w.id)
        out.put(("killed", held))
    stop.wait()
    stopping.set()
    for t in threads:
        t.join(timeout=fleet.lease * 2)
    engine.dispose()
    out.put(("report", report))


def submit_noop_jobs(queue: Queue, count: int) -> int:
    jobs = [NewJob(f"noop-{i}", NOOP, f'{{"noop":{i}}}', f"{i:064x}", {"n": i}, shape="noop") for i in range(count)]
    return queue.submit("fleet bench", {"study": "fleet-bench"}, "fleet-bench", jobs)


def run_fleet(url: str, fleet: Fleet) -> dict[str, float]:
    engine = get_engine(url)
    queue = Queue(engine)
    started = time.perf_counter()
    study_id = submit_noop_jobs(queue, fleet.jobs)
    print(f"queued {fleet.jobs:,} no-op jobs in {time.perf_counter() - started:.1f} s")
    engine.dispose()  # children are forked: none may inherit an open connection
    ctx = mp.get_context("fork")
    ready, go, kill, stop, out = ctx.Semaphore(0), ctx.Event(), ctx.Event(), ctx.Event(), ctx.Queue()
    ids = [f"fleet-{i:04d}" for i in range(fleet.workers)]
    hosts = [ctx.Process(target=host, args=(url, ids[p::fleet.processes], fleet, ready, go, kill, stop, out))
             for p in range(fleet.processes)]
    for p in hosts:
        p.start()
    for _ in hosts:
        ready.acquire()
    server_cpu, workers_cpu = server_cpu_seconds(url), _children_cpu()
    go.set()
    began = time.perf_counter()
    expected = fleet.jobs * sum(fleet.job_seconds) / 2 / fleet.workers
    deadline = began + 3 * expected + 20 * fleet.lease + 60
    killed_at, recovered_at, killed_jobs, reports = None, None, [], []
    done = 0
    while time.perf_counter() < deadline:
        time.sleep(0.25)
        counts = queue.counts(study_id)
        done = counts.get(SUCCEEDED, 0)
        if killed_at is None and done >= fleet.jobs * fleet.kill_after:
            kill.set()
            killed_at = time.perf_counter()
            for _ in hosts:
                killed_jobs += out.get()[1]
        if killed_at is not None and recovered_at is None and _all_succeeded(queue, killed_jobs):
            recovered_at = time.perf_counter()
        if done == fleet.jobs and recovered_at is not None:
            break
    finished = time.perf_counter()
    stop.set()
    kill.set()
    while len(reports) < len(hosts):
        kind, payload = out.get()
        if kind == "report":
            reports.append(payload)
    for p in hosts:
        p.join()
    server_cpu = (server_cpu_seconds(url) or math.nan) - (server_cpu or math.nan)
    print(f"CPU over the run: simulated workers {_children_cpu() - workers_cpu:.1f} s, PostgreSQL {server_cpu:.1f} s "
          f"(of {os.cpu_count()} cores x {finished - began:.0f} s; other work on this machine not counted)")
    return summarise(queue, study_id, fleet, reports, finished - began, killed_jobs,
                     (recovered_at - killed_at) if recovered_at and killed_at else math.nan)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _all_succeeded(queue: Queue, job_ids: list[int]) -> bool:
    with session_scope(queue.engine) as s:
        return s.scalar(select(func.count()).where(Job.id.in_(job_ids), Job.status == SUCCEEDED)) == len(job_ids)


def summarise(queue: Queue, study_id: int, fleet: Fleet, reports: list[HostReport], seconds: float,
              killed_jobs: list[int], recover: float) -> dict[str, float]:
    latencies = sorted(x for r in reports for x in r.claim_seconds)
    claimed = [c for r in reports for c in r.claimed]
    completed = Counter(job for r in reports for job, _ in r.completed)
    dead = set().union(*(r.killed for r in reports))
    live_claims = Counter(job for job, worker in claimed if worker not in dead)
    with session_scope(queue.engine) as s:
        statuses = dict(s.execute(select(Job.id, Job.status).where(Job.study_id == study_id)).all())
        results = Counter(s.scalars(select(Result.job_id).join(Job, Job.id == Result.job_id)
                                    .where(Job.study_id == study_id, Result.name == "noop")).all())
    lost = sum(1 for job, status in statuses.items() if status != SUCCEEDED or results[job] != 1
               or completed[job] == 0)
    duplicated = sum(1 for job in statuses if completed[job] > 1 or live_claims[job] > 1)
    heartbeats = sum(r.heartbeats for r in reports)
    print(f"{fleet.workers} workers in {fleet.processes} processes, {fleet.jobs:,} jobs of "
          f"{fleet.job_seconds[0]:g}-{fleet.job_seconds[1]:g} s, lease {fleet.lease:g} s: {seconds:.1f} s")
    first = sorted(x for r in reports for x in r.first_claim_seconds)
    print(f"first claims, the fleet started at once: p50 {_pct(first, 50) * 1000:.1f} ms, "
          f"p99 {_pct(first, 99) * 1000:.1f} ms, max {first[-1] * 1000:.0f} ms")
    print(f"every claim: {len(claimed):,} jobs taken in all, {len(latencies):,} calls; "
          f"p50 {_pct(latencies, 50) * 1000:.1f} ms, p90 {_pct(latencies, 90) * 1000:.1f} ms, "
          f"p99 {_pct(latencies, 99) * 1000:.1f} ms, max {latencies[-1] * 1000:.0f} ms")
    empty = sorted(x for r in reports for x in r.empty_claim_seconds)
    taken = sorted(x for r in reports for x in r.taken_claim_seconds)
    print(f"  claims that took a job: p50 {_pct(taken, 50) * 1000:.1f} ms, p99 {_pct(taken, 99) * 1000:.1f} ms; "
          f"that found none ({len(empty):,}): p50 {_pct(empty, 50) * 1000:.1f} ms, p99 {_pct(empty, 99) * 1000:.1f} ms")
    print(f"heartbeats: {heartbeats:,} ({heartbeats / seconds:.0f}/s), leases lost by live workers: "
          f"{sum(r.leases_lost for r in reports)}")
    print(f"killed {len(dead)} workers holding {len(killed_jobs)} jobs: all finished by others {recover:.1f} s later")
    return {"workers": fleet.workers, "claims_per_s": len(claimed) / seconds, "p50_ms": _pct(latencies, 50) * 1000,
            "p99_ms": _pct(latencies, 99) * 1000, "recover_s": recover, "lost": lost, "duplicated": duplicated}


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q / 100))] if values else math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="the smallest fleet, a few seconds (make test)")
    parser.add_argument("--workers", type=int)
    parser.add_argument("--jobs", type=int)
    parser.add_argument("--processes", type=int)
    parser.add_argument("--job-seconds", help="the range of a job's length, e.g. 2-6")
    parser.add_argument("--lease", type=float, help="the workers' lease in seconds (backend/worker.py's default: 30)")
    parser.add_argument("--postgres", help="a server's admin URL: use a fresh database there, start none")
    args = parser.parse_args()
    base = SMOKE if args.smoke else FULL
    workers = args.workers or base.workers
    job_seconds = tuple(map(float, args.job_seconds.split("-"))) if args.job_seconds else base.job_seconds
    fleet = Fleet(workers, args.jobs or (base.jobs if args.workers is None else 10 * workers),
                  min(workers, args.processes or (base.processes if args.workers is None
                                                  else math.ceil(workers / 50))),
                  job_seconds, args.lease or base.lease, base.poll)
    try:
        with postgres_database(args.postgres, max_connections=fleet.workers + 50) as url:
            result = run_fleet(url, fleet)
    except NoPostgres as exc:
        sys.exit(f"fleet bench: {exc}")
    print(f"RESULT workers={result['workers']} claims_per_s={result['claims_per_s']:.1f} "
          f"p50_ms={result['p50_ms']:.1f} p99_ms={result['p99_ms']:.1f} recover_s={result['recover_s']:.1f} "
          f"lost={result['lost']} duplicated={result['duplicated']}")


if __name__ == "__main__":
    main()
