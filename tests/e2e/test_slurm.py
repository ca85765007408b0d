"""Workers on a real single-node Slurm cluster (Debian's slurm-wlm: munged, slurmctld and slurmd
started here with a temporary slurm.conf, as ../shared/ENVIRONMENT.md describes): `python -m backend
workers slurm` submits an array of two CPU workers, they run a small study, and one is cancelled
mid-job, by scancel's SIGTERM (it gives the job back) or by the SIGKILL Slurm sends after KillWait (its
lease expires). The other worker finishes the job, from the epoch state the first one saved, and
nothing is lost or run twice. Skipped with the reason without slurm-wlm; required under CI=true."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.schema import Artifact, Job, Metric, Result
from db.session import get_engine
from tests.db.conftest import POSTGRES, postgres_database

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo", "scontrol", "runuser")
# The smallest study: baseA, baseB and AnB at n = 1, probes off; epochs enough for a cancel to land mid-job.
EPOCHS = 60
STUDY = ["submit", "--preset", "yosinski-digits", "--quick", "--seeds", "0", "--n", "1", "--treatments", "AnB",
         "--epochs", str(EPOCHS), "--set", "probes.sharpness=null", "--set", "probes.similarity=null",
         "--name", "slurm"]


def _unavailable() -> str | None:
    missing = [p for p in PROGRAMS if shutil.which(p) is None]
    if missing:
        return f"slurm-wlm is not installed ({', '.join(missing)} missing): apt-get install slurm-wlm (.ci/run does)"
    if os.geteuid() != 0:
        return "a Slurm cluster here needs root (slurmd runs jobs as their user, munged as munge)"
    try:
        import pwd

        pwd.getpwnam("munge")
    except KeyError:
        return "no munge user: slurm-wlm's munge package is not set up"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float = 120.0, every: float = 0.3):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return None


def _stop(pid_file: Path) -> None:
    """SIGTERM the daemon named in its pid file and wait for it to go."""
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return
    if not _wait(lambda: not Path(f"/proc/{pid}").exists(), timeout=30):
        os.kill(pid, signal.SIGKILL)


@dataclass
class Cluster:
    folder: Path
    env: dict[str, str]  # SLURM_CONF

    def run(self, *argv: str, check: bool = True) -> str:
        done = subprocess.run(argv, env={**os.environ, **self.env}, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)}: {done.stderr or done.stdout}")
        return done.stdout

    def queued(self, job: str) -> list[str]:
        """The array tasks of `job` still pending or running."""
        return self.run("squeue", "-h", "-r", "-j", job, "-o", "%i", check=False).split()

    def state(self, task: str) -> str:
        return re.search(r"JobState=(\w+)", self.run("scontrol", "show", "job", task)).group(1)


@pytest.fixture(scope="module")
def slurm():
    reason = _unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the Slurm test: {reason}")
        pytest.skip(reason)
    import pwd

    munge = pwd.getpwnam("munge")
    folder = Path(tempfile.mkdtemp(prefix="transferlab-slurm-"))  # /tmp: munged must reach its socket folder
    folder.chmod(0o755)
    keys, sockets = folder / "munge", folder / "munge-run"
    for path, mode in ((keys, 0o700), (sockets, 0o755)):
        path.mkdir()
        os.chown(path, munge.pw_uid, munge.pw_gid)
        path.chmod(mode)
    key = keys / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chown(key, munge.pw_uid, munge.pw_gid)
    key.chmod(0o600)
    socket_path = sockets / "munge.socket"
    host = socket.gethostname().split(".")[0]
    conf = folder / "slurm.conf"
    for name in ("state", "spool", "log"):
        (folder / name).mkdir()
    conf.write_text(f"""ClusterName=transferlab-test
SlurmctldHost={host}
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={socket_path}
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=30
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/log/slurmctld.log
SlurmdLogFile={folder}/log/slurmd.log
NodeName={host} CPUs=4 RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
    cluster = Cluster(folder, {"SLURM_CONF": str(conf)})
    try:
        subprocess.run(["runuser", "-u", "munge", "--", "munged", f"--socket={socket_path}", f"--key-file={key}",
                        f"--pid-file={sockets}/munged.pid", f"--log-file={keys}/munged.log",
                        f"--seed-file={keys}/munged.seed"], check=True, capture_output=True, timeout=30)
        assert _wait(socket_path.exists, timeout=30), "munged did not create its socket"
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([daemon, "-f", str(conf)], env={**os.environ, **cluster.env}, check=True, timeout=60)
        idle = _wait(lambda: cluster.run("sinfo", "-h", "-o", "%t", check=False).strip() == "idle", timeout=90)
        logs = [folder / "log" / f"{daemon}.log" for daemon in ("slurmctld", "slurmd")]
        assert idle, "the node never became idle:\n" + "\n".join(f.read_text()[-2000:] for f in logs if f.exists())
        yield cluster
    finally:
        for job in set(cluster.run("squeue", "-h", "-o", "%A", check=False).split()):
            cluster.run("scancel", job, check=False)
        _wait(lambda: not cluster.run("squeue", "-h", check=False).strip(), timeout=30)
        for daemon in ("slurmd", "slurmctld"):
            _stop(folder / f"{daemon}.pid")
        _stop(sockets / "munged.pid")
        shutil.rmtree(folder, ignore_errors=True)


def _lab(*argv: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "backend", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _workers(logs: Path, job: str) -> dict[str, str]:
    """Worker id -> its array task (JOB_TASK), from the lines the workers print first in their logs."""
    found = {}
    for log in logs.glob(f"transferlab-worker-{job}_*.out"):
        match = re.search(r"^worker (\S+) on ", log.read_text(), re.MULTILINE)
        if match:
            found[match.group(1)] = f"{job}_{log.stem.rsplit('_', 1)[1]}"
    return found


@pytest.mark.parametrize("cancel", ["SIGTERM", "SIGKILL"])
def test_slurm_workers_finish_a_study_when_one_is_cancelled_mid_job(slurm, tmp_path, cancel):
    url = postgres_database() if POSTGRES else f"sqlite:///{tmp_path / 'store.db'}"
    env = {**os.environ, **slurm.env, "TRANSFERLAB_DATABASE_URL": url}
    study_id = int(re.search(r"study (\d+)", _lab(*STUDY, env=env)).group(1))
    # --idle-exit: a safety net only; a worker idle while its peer's job waits must not leave, so the
    # test cancels the survivor itself once the study is done.
    submitted = _lab("workers", "slurm", "--workers", "2", "--gpus-per-worker", "0", "--lease", "3",
                     "--idle-exit", "120", env=env)
    job = re.search(r"slurm job (\d+)", submitted).group(1)
    logs = Path(os.environ["TRANSFERLAB_VAR"]).resolve() / "slurm"
    engine = get_engine(url)

    def jobs() -> dict:  # job id -> its row
        with engine.connect() as conn:
            return {row.id: row for row in conn.execute(select(Job).where(Job.study_id == study_id))}

    def victim():
        """A worker of the array a good way into a job (an epoch state saved), with its peer started."""
        workers = _workers(logs, job)
        for row in jobs().values():
            mid_job = row.status == "running" and 0.1 <= row.progress <= 0.4
            if mid_job and row.worker_id in workers and len(workers) == 2:
                return row.id, row.worker_id, workers
        return None

    found = _wait(victim, timeout=240)
    assert found, f"no job ran on the array: {jobs()}; squeue: {slurm.run('squeue', check=False)}"
    victim_job, victim_id, workers = found
    task = workers[victim_id]
    if cancel == "SIGTERM":
        slurm.run("scancel", task)  # SIGCONT + SIGTERM, SIGKILL after KillWait
    else:  # what Slurm sends a worker that did not stop within KillWait
        slurm.run("scancel", "--batch", "--signal=KILL", task)
    assert _wait(lambda: task not in slurm.queued(job), timeout=60), slurm.queued(job)
    assert slurm.state(task) in ("CANCELLED", "FAILED")

    assert _wait(lambda: all(r.status == "succeeded" for r in jobs().values()), timeout=300), \
        {r.id: (r.status, r.message) for r in jobs().values()}
    survivor_id = next(w for w in workers if w != victim_id)
    slurm.run("scancel", job)  # the survivor is idle: it leaves at once
    assert _wait(lambda: not slurm.queued(job), timeout=60)

    done = jobs()
    assert len(done) == 3 and {r.kind for r in done.values()} == {"train", "transfer"}
    # The cancelled job was finished by the other worker: given back (SIGTERM, the attempt not counted)
    # or taken after its lease expired (SIGKILL, a second attempt); every other job ran once.
    assert done[victim_job].worker_id == survivor_id
    assert done[victim_job].attempts == (1 if cancel == "SIGTERM" else 2)
    assert all(r.attempts == 1 for i, r in done.items() if i != victim_job)
    victim_log = (logs / f"transferlab-worker-{task}.out").read_text()
    assert ("stopping after the current step" in victim_log) == (cancel == "SIGTERM")
    assert "ran 0 jobs" not in (logs / f"transferlab-worker-{workers[survivor_id]}.out").read_text()
    with engine.connect() as conn:
        # Nothing lost: the survivor resumed from the victim's last epoch state, and the curves are whole.
        resumed = conn.scalar(select(Result.value).where(Result.job_id == victim_job,
                                                         Result.name == "resumed_from_epoch"))
        assert 1 <= resumed < EPOCHS
        epochs = conn.scalars(select(Metric.step).where(Metric.job_id == victim_job, Metric.key == "test_accuracy"))
        assert sorted(epochs) == list(range(1, EPOCHS + 1))
        # Stored once: one row per result, per curve point, one checkpoint per network.
        for columns in ((Result.job_id, Result.name), (Metric.job_id, Metric.key, Metric.step)):
            repeated = conn.execute(select(*columns).group_by(*columns).having(func.count() > 1)).all()
            assert repeated == []
        checkpoints = conn.execute(select(Artifact.job_id, func.count()).where(Artifact.kind == "checkpoint")
                                   .group_by(Artifact.job_id)).all()
        assert dict(checkpoints) == {i: 1 for i in done}
        assert conn.scalar(select(func.count()).select_from(Result).where(Result.name == "final_accuracy")) == 3
