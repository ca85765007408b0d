"""Probes beside their network: what one real worker saves by holding the networks and data it just
used and claiming the jobs that read them first.

    OMP_NUM_THREADS=1 .venv/bin/python bench/locality.py [--preset yosinski-digits] [--full] [--repeats 2] [--smoke]

One worker drains the preset study (its quick size unless --full) on a fresh SQLite store and
artifacts folder, three ways, interleaved `--repeats` times:
  before     holds nothing and claims in age order (the worker before issue 18);
  held       holds its last 4 networks and data sets, claims in age order;
  preferred  holds them and prefers the jobs reading the networks it holds (the worker now).
Timed per job kind: seconds getting the job's networks (checkpoint read and checked, or held) and
data (loaded, or held), checkpoint reads and data loads; and the claims and the whole drain. The
table shows each variant's fastest run (the machine is shared). --smoke: one seed, n = 1 and 2, AnB and
BnB, one epoch, both probes at their smallest, one repeat (what `make test` runs; its figures mean
nothing). Last line:
RESULT loading_per_probe_before=<s> loading_per_probe_preferred=<s> wall_before=<s> wall_preferred=<s>
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from backend.jobs import NETWORK_KINDS  # noqa: E402
from backend.specs.presets import PRESETS  # noqa: E402
from backend.studies import parse_study  # noqa: E402
import backend.worker as worker_module  # noqa: E402
from backend.transfer import SourceNet  # noqa: E402
from backend.worker import Worker  # noqa: E402
from db.queue import Queue  # noqa: E402
from db.session import get_engine  # noqa: E402
from db.submit import submit_study  # noqa: E402
from bench.study_probes import smallest  # noqa: E402

VARIANTS = {"before": (0, False), "held": (4, False), "preferred": (4, True)}  # held networks, prefer


class TimedQueue(Queue):
    """Times every claim; `prefer_held` False drops the worker's preference (age order)."""

    def __init__(self, engine, prefer_held: bool):
        super().__init__(engine)
        self.prefer_held, self.claim_seconds, self.claims = prefer_held, 0.0, 0

    def claim(self, worker_id, lease_seconds, prefer=()):
        started = time.perf_counter()
        try:
            return super().claim(worker_id, lease_seconds, prefer if self.prefer_held else ())
        finally:
            self.claim_seconds += time.perf_counter() - started
            self.claims += 1


class TimedWorker(Worker):
    """Adds up, per job kind, the time spent getting networks and data, and counts the real reads."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = ""
        self.seconds: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def run(self, job):
        self.kind = job.kind
        started = time.perf_counter()
        try:
            return super().run(job)
        finally:
            self.seconds[self.kind]["job"] += time.perf_counter() - started
            self.seconds[self.kind]["jobs"] += 1

    def _network(self, key):
        return self._measured("networks", "checkpoint", "checkpoint_reads",
                              lambda: super(TimedWorker, self)._network(key))

    def _task(self, data):
        return self._measured("data", "data", "data_loads", lambda: super(TimedWorker, self)._task(data))

    def _measured(self, seconds: str, read: str, reads: str, get):
        """get(), its seconds added under `seconds` and the real reads of kind `read` under `reads`."""
        before, started = READS[read], time.perf_counter()
        value = get()
        self.seconds[self.kind][seconds] += time.perf_counter() - started
        self.seconds[self.kind][reads] += READS[read] - before
        return value


READS = {"checkpoint": 0, "data": 0}


def counted(name: str, read):
    def wrapper(*args, **kwargs):
        READS[name] += 1
        return read(*args, **kwargs)
    return wrapper


worker_module.load_task = counted("data", worker_module.load_task)
SourceNet.load = staticmethod(counted("checkpoint", SourceNet.load))


def study_spec(preset: str, quick: bool, smoke: bool) -> dict:
    spec = PRESETS[preset].spec_dict(quick=quick)
    return {**smallest(spec), "seeds": [0], "n": [1, 2], "treatments": ["AnB", "BnB"]} if smoke else spec


def drain(spec: dict, preset: str, variant: str) -> dict:
    held, prefer = VARIANTS[variant]
    with tempfile.TemporaryDirectory() as folder:
        queue = TimedQueue(get_engine(f"sqlite:///{folder}/store.db"), prefer)
        submit_study(queue, parse_study(spec), preset=preset)
        worker = TimedWorker(queue, "cpu", artifacts=Path(folder) / "artifacts", held_networks=held,
                             held_data_bytes=(1 << 30) if held else 0)
        started = time.perf_counter()
        ran = worker.serve(idle_exit=0)
        wall = time.perf_counter() - started
        failed = {k: v for k, v in queue.counts().items() if k != "succeeded"}
        assert not failed, f"{variant}: jobs not succeeded: {failed}"
        return {"wall": wall, "ran": ran, "claim_ms": 1000 * queue.claim_seconds / max(queue.claims, 1),
                "kinds": {k: dict(v) for k, v in worker.seconds.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="yosinski-digits")
    parser.add_argument("--full", action="store_true", help="the preset's full size, not its quick one")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="the smallest study, once: checks the bench still runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    spec = study_spec(args.preset, not args.full, args.smoke)
    args.repeats = 1 if args.smoke else args.repeats
    runs: dict[str, list[dict]] = defaultdict(list)
    for repeat in range(args.repeats):
        for variant in VARIANTS:
            run = drain(spec, args.preset, variant)
            runs[variant].append(run)
            print(f"# {variant} run {repeat + 1}: {run['ran']} jobs in {run['wall']:.1f} s", flush=True)
    best = {variant: min(rs, key=lambda r: r["wall"]) for variant, rs in runs.items()}
    print(f"\n{args.preset} ({'full' if args.full else 'quick'}), one worker, best of {args.repeats}:")
    print(f"{'variant':<10} {'kind':<11} {'jobs':>5} {'job s':>8} {'networks s':>11} {'data s':>8} "
          f"{'ckpt reads':>10} {'data loads':>10} {'load ms/job':>11}")
    probe = {}
    for variant, run in best.items():
        for kind, s in sorted(run["kinds"].items()):
            loading = s.get("networks", 0.0) + s.get("data", 0.0)
            print(f"{variant:<10} {kind:<11} {int(s['jobs']):>5} {s['job']:>8.2f} {s.get('networks', 0):>11.3f} "
                  f"{s.get('data', 0):>8.3f} {int(s.get('checkpoint_reads', 0)):>10} {int(s.get('data_loads', 0)):>10} "
                  f"{1000 * loading / s['jobs']:>11.1f}")
        probes = [s for kind, s in run["kinds"].items() if kind not in NETWORK_KINDS]
        jobs = sum(s["jobs"] for s in probes)
        probe[variant] = sum(s.get("networks", 0.0) + s.get("data", 0.0) for s in probes) / max(jobs, 1)
        total = sum(s.get("networks", 0.0) + s.get("data", 0.0) for s in run["kinds"].values())
        reads = [sum(int(s.get(k, 0)) for s in run["kinds"].values()) for k in ("checkpoint_reads", "data_loads")]
        print(f"{variant:<10} wall {run['wall']:.1f} s, claim {run['claim_ms']:.1f} ms mean, "
              f"loading {total:.2f} s in all ({reads[0]} checkpoint reads, {reads[1]} data loads), "
              f"{1000 * probe[variant]:.1f} ms per probe job")
    print(f"RESULT loading_per_probe_before={probe['before']:.4f} loading_per_probe_preferred={probe['preferred']:.4f} "
          f"wall_before={best['before']['wall']:.1f} wall_preferred={best['preferred']['wall']:.1f}")


if __name__ == "__main__":
    main()
