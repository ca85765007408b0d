"""The lab deployment as plain processes on loopback, as README "Deploy for a lab" runs it: PostgreSQL,
the dashboard with no embedded worker, two workers; a small study runs and reads back through the
dashboard's HTTP server and the store; one worker is killed mid-job and the other finishes it."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from db.queue import Queue
from db.results import Results
from db.session import get_engine
from db.submit import submit_study
from tests.db.conftest import postgres_database

ROOT = Path(__file__).resolve().parents[2]
# Long enough for the kill to land mid-job: baseA and baseB run 40 epochs on the digits.
STUDY = {"data": {"source": {"kind": "digits"}}, "model": {"arch": "mlp", "hidden": [32, 16]},
         "train": {"epochs": 40, "batch_size": 32}, "seeds": [0], "treatments": ["AnB"], "n": [1],
         "probes": {"sharpness": None, "similarity": None}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout=180.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except OSError:
        return 0, b""


def test_a_lab_of_processes_runs_a_study_and_survives_a_killed_worker(tmp_path):
    from backend.specs import YosinskiSpec, parse

    url = postgres_database()  # skips without a server; CI requires one
    env = {**os.environ, "TRANSFERLAB_DATABASE_URL": url, "TRANSFERLAB_ARTIFACTS": str(tmp_path / "artifacts"),
           "TRANSFERLAB_VAR": str(tmp_path / "var"), "TRANSFERLAB_EMBEDDED_WORKER": "0", "OMP_NUM_THREADS": "1",
           "TRANSFERLAB_PORT": str(_free_port())}
    flags = subprocess.run([sys.executable, "-m", "backend.settings", "streamlit-flags"], env=env, cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    assert flags[:2] == ["--server.address", "127.0.0.1"]  # loopback unless the admin says otherwise
    base = f"http://127.0.0.1:{flags[3]}"
    log = open(tmp_path / "app.log", "w")
    app = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                            "--browser.gatherUsageStats", "false", *flags], cwd=ROOT, env=env, stdout=log,
                           stderr=subprocess.STDOUT)
    workers = [subprocess.Popen([sys.executable, "-m", "backend", "worker", "--device", "cpu", "--lease", "3",
                                 "--idle-exit", "20"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    try:
        assert _wait(lambda: _get(f"{base}/_stcore/health") == (200, b"ok")), (tmp_path / "app.log").read_text()[-2000:]
        queue = Queue(get_engine(url))
        study_id = submit_study(queue, parse(YosinskiSpec, STUDY), name="lab")
        results = Results(queue.engine)

        def running_on():
            running = results.jobs(study_id, status="running")
            return set(running.worker) if len(running) else set()

        assert _wait(lambda: len(running_on()) >= 1)
        victim_id = sorted(running_on())[0]
        victim = next(w for w in workers if w.pid == int(victim_id.split(":")[1]))
        victim.send_signal(signal.SIGKILL)  # mid-job: no chance to give the job back
        victim.wait(timeout=30)
        assert _wait(lambda: queue.counts(study_id) == {"succeeded": 3}, timeout=300), queue.counts(study_id)
        done = results.jobs(study_id)
        assert victim_id not in set(done.worker) and done.attempts.max() == 2  # the survivor re-ran it
        assert _get(f"{base}/")[0] == 200 and _get(f"{base}/_stcore/health")[1] == b"ok"
        assert len(results.study_scores(study_id, kinds=["train", "transfer"])) == 3
    finally:
        for proc in [app, *workers]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [app, *workers]:
            proc.wait(timeout=30)
