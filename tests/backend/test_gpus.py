"""One worker per GPU: which GPUs, how each child is pinned, stopping them together, the CPU fallback
and the memory preflight on the worker's own device. CUDA itself is absent here: the child processes
are real, their GPUs are not."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from backend import gpus

ROOT = Path(__file__).resolve().parents[2]


def test_all_takes_every_visible_gpu_and_a_list_picks_by_position():
    visible = ["2", "5", "7"]  # a Slurm allocation's CUDA_VISIBLE_DEVICES
    assert gpus.choose_gpus("all", visible) == visible
    assert gpus.choose_gpus("0,2", visible) == ["2", "7"]
    assert gpus.choose_gpus(" 1 ", visible) == ["5"]


@pytest.mark.parametrize("selection, message", [
    ("3", r"GPU 3 does not exist here: 3 visible \(0, 1, 2\)"),
    ("-1", "GPU -1 does not exist"),
    ("0,0", "GPU 0 is listed twice"),
    ("a", "'a' is not a GPU number"),
])
def test_a_bad_selection_names_the_entry(selection, message):
    with pytest.raises(ValueError, match=message):
        gpus.choose_gpus(selection, ["0", "1", "2"])


def test_visible_gpus_follow_the_inherited_cuda_visible_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    assert gpus.visible_gpus() == ["4", "6"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert gpus.visible_gpus() == ["0", "1"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpus.visible_gpus() == []


def test_each_worker_sees_only_its_own_gpu_as_cuda_0():
    commands = gpus.worker_commands(["4", "6"], ["--lease", "10"])
    assert [env["CUDA_VISIBLE_DEVICES"] for _, env in commands] == ["4", "6"]
    for argv, _ in commands:
        assert argv[1:] == ["-m", "backend", "worker", "--device", "cuda:0", "--lease", "10"]


SUPERVISOR = textwrap.dedent("""
    import json, sys
    from backend import gpus
    print("started", flush=True)
    sys.exit(gpus.supervise([(argv, env) for argv, env in json.loads(sys.argv[1])]))
""")
CHILD = textwrap.dedent("""
    import os, signal, sys, time
    out = sys.argv[1]
    def stop(signum, frame):
        with open(out, "a") as f:
            f.write(f"stopped by {signum}\\n")
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    with open(out, "w") as f:
        f.write(os.environ["CUDA_VISIBLE_DEVICES"] + "\\n")
    time.sleep(60)
""")


def test_a_signal_to_the_parent_stops_every_worker(tmp_path):
    outs = [tmp_path / f"child{i}.txt" for i in range(2)]
    commands = [([sys.executable, "-c", CHILD, str(out)], {**os.environ, "CUDA_VISIBLE_DEVICES": str(i)})
                for i, out in enumerate(outs)]
    parent = subprocess.Popen([sys.executable, "-c", SUPERVISOR, json.dumps(commands)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    assert parent.stdout.readline().strip() == "started"
    deadline = time.monotonic() + 30
    while not all(out.exists() and out.read_text() for out in outs) and time.monotonic() < deadline:
        time.sleep(0.05)
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=30) == 0
    for i, out in enumerate(outs):
        assert out.read_text().splitlines() == [str(i), f"stopped by {int(signal.SIGTERM)}"]


def test_the_first_failure_is_the_exit_status_and_the_others_finish():
    commands = [([sys.executable, "-c", "import sys; sys.exit(0)"], dict(os.environ)),
                ([sys.executable, "-c", "import sys; sys.exit(3)"], dict(os.environ))]
    assert gpus.supervise(commands) == 3


def run_cli(tmp_path, *args):
    env = {**os.environ, "TRANSFERLAB_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
           "TRANSFERLAB_ARTIFACTS": str(tmp_path / "artifacts"), "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "-m", "backend", "worker", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_with_no_gpu_all_runs_one_cpu_worker_and_says_so(tmp_path):
    done = run_cli(tmp_path, "--gpus", "all", "--once")
    assert done.returncode == 0, done.stderr
    assert "no GPU is visible here" in done.stdout
    assert "on cpu" in done.stdout and "ran 0 jobs" in done.stdout


def test_asking_for_a_gpu_that_is_not_there_is_refused(tmp_path):
    done = run_cli(tmp_path, "--gpus", "0,1", "--once")
    assert done.returncode == 2
    assert "error: --gpus: GPU 0 does not exist here: 0 visible (none)" in done.stderr


def test_the_worker_preflights_a_job_against_its_own_device_memory(tmp_path, monkeypatch):
    from backend.specs import TrainJobSpec, canonical_json, parse, spec_hash
    from backend.worker import Worker
    from db.queue import NewJob, Queue
    from db.results import Results
    from db.session import get_engine

    monkeypatch.setenv("TRANSFERLAB_WORKER_MEMORY_GB", "1000")  # the submitting machine thinks it fits
    queue = Queue(get_engine(f"sqlite:///{tmp_path / 'store.db'}"))
    spec = parse(TrainJobSpec, {"data": {"source": {"kind": "synthetic", "n_classes": 2, "size": 8}},
                                "model": {"arch": "mlp", "hidden": [4096, 4096]}})
    key = spec_hash(spec)
    queue.submit("big", {}, "big", [NewJob(key, "train", canonical_json(spec), key, {})])
    worker = Worker(queue, "cpu", artifacts=tmp_path / "artifacts")
    worker.memory_bytes = 2**20  # this worker's device: 1 MiB
    assert worker.serve(once=True) == 1
    [job] = Results(queue.engine).jobs().itertuples()
    assert job.status == "failed" and job.attempts == 1
    assert "but this worker's cpu has 0.000977 GiB" in job.error and "shrink the network" in job.error
