"""Workers on Slurm: `python -m backend workers slurm --workers N` submits one sbatch array job.

Each array task holds `--gpus-per-worker` GPUs (`--gres=gpu:G`) and runs `python -m backend worker
--gpus all`, one worker process per GPU Slurm gave it (with none: one CPU worker). The workers pull
jobs from the lab's store like any other worker, so the array can be any size, started while a study
runs, and cancelled at any time: `scancel` sends SIGTERM (the worker gives its running job back to
the queue) and SIGKILL after the cluster's KillWait (the job's lease expires and another worker takes
it, resuming from its last epoch).

Plain sbatch rather than submitit: the job is one short shell script that `--dry-run` prints exactly
as Slurm will run it, it needs no new dependency and pickles nothing, and the worker already is a
command line. Settings reach the workers the way they reach every process of the lab
(backend/settings.py): the submitting shell's environment, which sbatch exports (`--export=ALL`), and
the settings file. The script holds no secret: the store is named with its password masked.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from backend import settings

JOB_NAME = "transferlab-worker"
# Slurm's time formats: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS, or no limit.
TIME_LIMIT = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$|^(infinite|unlimited)$", re.IGNORECASE)
PARTITIONS = re.compile(r"^[\w.-]+(,[\w.-]+)*$")
LONG_OPTION = re.compile(r"^[a-z][a-z0-9-]*$")  # sbatch's long option names: account, qos, mem-per-gpu
# Directives this module writes itself: an --sbatch option may not change them.
OWN_OPTIONS = ("array", "output", "error", "chdir", "export", "job-name", "gres", "partition", "time",
               "cpus-per-task", "wrap")


@dataclass(frozen=True)
class WorkerArray:
    """One sbatch array job of lab workers."""

    workers: int  # array tasks; each runs one worker process per GPU it holds
    gpus_per_worker: int = 1  # GPUs per array task (--gres=gpu:G); 0: one CPU worker per task
    partition: str | None = None  # Slurm partition(s); None: the cluster's default
    time_limit: str | None = None  # at the limit Slurm sends SIGTERM: the worker gives its job back
    cpus_per_task: int | None = None  # also torch's CPU threads; None: Slurm's default (one)
    lease: float = 30.0  # seconds a job is held without a heartbeat (worker --lease)
    idle_exit: float | None = None  # a worker leaves after this long with nothing to do; None: never
    sbatch_options: tuple[str, ...] = ()  # further directives, e.g. "account=lab", "qos=high"

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("--workers: give at least 1")
        if self.gpus_per_worker < 0:
            raise ValueError("--gpus-per-worker: give 0 (CPU workers) or more")
        if self.partition is not None and not PARTITIONS.match(self.partition):
            raise ValueError(f"--partition: {self.partition!r} is not a partition name (or a comma-separated list)")
        if self.time_limit is not None and not TIME_LIMIT.match(self.time_limit):
            raise ValueError(f"--time: {self.time_limit!r} is not a Slurm time limit (HH:MM:SS, D-HH:MM:SS, "
                             "MM or infinite)")
        if self.cpus_per_task is not None and self.cpus_per_task < 1:
            raise ValueError("--cpus-per-task: give at least 1")
        if self.lease <= 0:
            raise ValueError("--lease: give a positive number of seconds")
        if self.idle_exit is not None and self.idle_exit < 0:
            raise ValueError("--idle-exit: give a number of seconds, 0 or more")
        for option in self.sbatch_options:
            name = option.removeprefix("--").partition("=")[0]
            if "\n" in option or not LONG_OPTION.match(name):
                raise ValueError(f"--sbatch: {option!r} is not one sbatch option such as account=lab")
            if name in OWN_OPTIONS:
                raise ValueError(f"--sbatch: {name} is set by this command (see --dry-run); use its own flag "
                                 "where it has one")

    def worker_command(self, python: str) -> list[str]:
        """What each array task runs: one worker per GPU it holds, or one CPU worker."""
        command = [python, "-m", "backend", "worker"]
        command += ["--gpus", "all"] if self.gpus_per_worker else ["--device", "cpu"]
        command += ["--lease", f"{self.lease:g}"]
        if self.idle_exit is not None:
            command += ["--idle-exit", f"{self.idle_exit:g}"]
        return command


def log_dir() -> Path:
    """Where the array's scripts and Slurm logs go: the var folder, which every worker shares."""
    return settings.var_dir().resolve() / "slurm"


def masked_store() -> str:
    """The store's URL as the script may show it: with its password masked."""
    from sqlalchemy.engine import make_url

    url = settings.get("database_url")
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: show only its scheme
        return url.partition(":")[0] + ":..."


def array_script(array: WorkerArray, python: str | None = None, project: Path = settings.PROJECT_ROOT) -> str:
    """The sbatch script of `array`: directives, then the worker it runs, in the project folder."""
    python = python or sys.executable
    logs = log_dir()
    for label, path in (("the project folder", project), ("the var folder", logs)):
        if any(c.isspace() for c in str(path)):  # sbatch reads directives split on white space
            raise ValueError(f"{label} {str(path)!r} has white space, which #SBATCH lines cannot carry: "
                             "move it, or set TRANSFERLAB_VAR")
    each = (f"{array.gpus_per_worker} GPU{'s' if array.gpus_per_worker > 1 else ''}, one worker process per GPU"
            if array.gpus_per_worker else "one CPU worker")
    directives = [f"--job-name={JOB_NAME}", f"--array=0-{array.workers - 1}"]
    if array.gpus_per_worker:
        directives.append(f"--gres=gpu:{array.gpus_per_worker}")
    if array.partition:
        directives.append(f"--partition={array.partition}")
    if array.time_limit:
        directives.append(f"--time={array.time_limit}")
    if array.cpus_per_task:
        directives.append(f"--cpus-per-task={array.cpus_per_task}")
    directives += [f"--chdir={project}", f"--output={logs}/%x-%A_%a.out", "--export=ALL"]
    directives += ["--" + option.removeprefix("--") for option in array.sbatch_options]
    lines = [
        "#!/bin/bash",
        f"# Transfer Lab workers: {array.workers} Slurm array task{'s' if array.workers > 1 else ''}, "
        f"each with {each}.",
        "# Written by `python -m backend workers slurm`. Stop them with `scancel <job id>`: each worker gives",
        "# its running job back to the queue (SIGTERM), or its lease expires (SIGKILL) and another worker takes it.",
        *(f"#SBATCH {d}" for d in directives),
        "",
        "# Settings (backend/settings.py) come from the submitting shell's environment (TRANSFERLAB_*, exported",
        "# by --export=ALL) and the settings file below; this script holds no secret.",
        f"# The store at submission: {masked_store()}",
        f"export TRANSFERLAB_CONFIG={shlex.quote(str(settings.config_file().resolve()))}",
        "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}  # torch's CPU threads: the CPUs Slurm gave this task",
        "",
        # exec: the worker is the batch step's process, so scancel's SIGTERM reaches it directly.
        "exec " + shlex.join(array.worker_command(python)),
        "",
    ]
    return "\n".join(lines)


def submit(script: str) -> tuple[str, Path]:
    """Write the script beside its logs and submit it with sbatch; (Slurm job id, script path).
    A RuntimeError carries sbatch's own message."""
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        raise RuntimeError("sbatch is not on PATH: run this on a Slurm login node (--dry-run prints the script)")
    folder = log_dir()
    folder.mkdir(parents=True, exist_ok=True)  # Slurm does not create the --output folder
    path = folder / f"{JOB_NAME}-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 1_000_000:06d}.sbatch"
    path.write_text(script)
    done = subprocess.run([sbatch, "--parsable", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"sbatch refused {path}: {(done.stderr or done.stdout).strip()}")
    return done.stdout.strip().split(";")[0], path  # "<job id>[;<cluster>]"


# ---------------------------------------------------------------- command line

def add_parser(commands: argparse._SubParsersAction) -> None:
    """`workers slurm ...` under the CLI's commands."""
    workers = commands.add_parser("workers", help="start many workers through a cluster scheduler")
    kinds = workers.add_subparsers(dest="scheduler", required=True)
    slurm = kinds.add_parser("slurm", help="submit an sbatch array job of workers (one array task per worker)",
                             description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    slurm.add_argument("--workers", type=int, required=True, metavar="N", help="array tasks (workers) to start")
    slurm.add_argument("--gpus-per-worker", type=int, default=1, metavar="G",
                       help="GPUs per array task, one worker process each (default 1); 0: CPU workers")
    slurm.add_argument("--partition", help="Slurm partition (default: the cluster's)")
    slurm.add_argument("--time", dest="time_limit", metavar="HH:MM:SS", help="time limit per task (default: the "
                       "partition's); at the limit the worker gives its running job back")
    slurm.add_argument("--cpus-per-task", type=int, metavar="C", help="CPUs per array task (also torch's threads)")
    slurm.add_argument("--lease", type=float, default=30.0, help="seconds a job is held without a heartbeat "
                       "(default 30)")
    slurm.add_argument("--idle-exit", type=float, metavar="SECONDS", help="a worker leaves after this long with "
                       "nothing to do (default: it stays until cancelled or its time limit)")
    slurm.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                       help="another sbatch option, without its dashes, e.g. account=lab (repeatable)")
    slurm.add_argument("--dry-run", action="store_true", help="print the script and submit nothing")


def run(args: argparse.Namespace) -> int:
    try:
        array = WorkerArray(args.workers, args.gpus_per_worker, args.partition, args.time_limit, args.cpus_per_task,
                            args.lease, args.idle_exit, tuple(args.sbatch))
        script = array_script(array)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    store = settings.get("database_url")
    if store.startswith("sqlite"):
        print(f"note: the store is SQLite ({masked_store()}): its workers must run on this machine; on "
              "several nodes use PostgreSQL (TRANSFERLAB_DATABASE_URL)", file=sys.stderr)
    if args.dry_run:
        print(script, end="")
        return 0
    try:
        job_id, path = submit(script)
    except (RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"slurm job {job_id}: {array.workers} worker task(s) submitted ({path}); logs "
          f"{log_dir()}/{JOB_NAME}-{job_id}_<task>.out; stop with scancel {job_id}", flush=True)
    return 0
