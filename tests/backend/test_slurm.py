"""`workers slurm`: the sbatch script it writes (--dry-run), and its refusals. The cluster itself is
in tests/e2e/test_slurm.py."""

import subprocess
import sys

import pytest

from backend import settings
from backend.cli import main

SECRET_URL = "postgresql+psycopg://lab:s3cret-pw@db.lab:5432/transferlab"


def _dry_run(capsys, *flags: str) -> tuple[int, str, str]:
    code = main(["workers", "slurm", *flags, "--dry-run"])
    out = capsys.readouterr()
    return code, out.out, out.err


def _directives(script: str) -> list[str]:
    return [line.removeprefix("#SBATCH ") for line in script.splitlines() if line.startswith("#SBATCH ")]


def test_a_gpu_array_runs_one_worker_per_gpu_in_the_project_with_no_secret(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSFERLAB_DATABASE_URL", SECRET_URL)
    code, script, err = _dry_run(capsys, "--workers", "4", "--gpus-per-worker", "2", "--partition", "gpu",
                                 "--time", "12:00:00", "--cpus-per-task", "8", "--sbatch", "account=vision",
                                 "--lease", "60", "--idle-exit", "600")
    assert code == 0 and "SQLite" not in err
    var = (tmp_path / "var").resolve()
    assert _directives(script) == [
        "--job-name=transferlab-worker", "--array=0-3", "--gres=gpu:2", "--partition=gpu", "--time=12:00:00",
        "--cpus-per-task=8", f"--chdir={settings.PROJECT_ROOT}", f"--output={var}/slurm/%x-%A_%a.out",
        "--export=ALL", "--account=vision"]
    assert script.startswith("#!/bin/bash\n")
    assert script.splitlines()[-1] == f"exec {sys.executable} -m backend worker --gpus all --lease 60 --idle-exit 600"
    # The store comes from the exported environment or the settings file, never from the script.
    assert "s3cret-pw" not in script and "postgresql+psycopg://lab:***@db.lab:5432/transferlab" in script
    assert f"export TRANSFERLAB_CONFIG={tmp_path / 'no-settings.toml'}" in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0  # the shell reads it
    assert not (var / "slurm").exists()  # a dry run writes nothing


def test_cpu_workers_have_no_gres_and_run_on_the_cpu(capsys):
    code, script, err = _dry_run(capsys, "--workers", "1", "--gpus-per-worker", "0")
    assert code == 0
    assert "--array=0-0" in _directives(script) and not any(d.startswith("--gres") for d in _directives(script))
    assert script.splitlines()[-1] == f"exec {sys.executable} -m backend worker --device cpu --lease 30"
    assert "note: the store is SQLite" in err  # one machine's file: fine on one node, said for many


@pytest.mark.parametrize("flags, message", [
    (["--workers", "0"], "--workers: give at least 1"),
    (["--workers", "2", "--gpus-per-worker", "-1"], "--gpus-per-worker"),
    (["--workers", "2", "--time", "2h"], "--time: '2h' is not a Slurm time limit"),
    (["--workers", "2", "--partition", "gpu; rm -rf /"], "--partition"),
    (["--workers", "2", "--sbatch", "export=NONE"], "--sbatch: export is set by this command"),
    (["--workers", "2", "--sbatch", "account=a\n#SBATCH --x"], "--sbatch"),
    (["--workers", "2", "--sbatch", "-A lab"], "--sbatch: '-A lab' is not one sbatch option"),
    (["--workers", "2", "--lease", "0"], "--lease"),
])
def test_bad_flags_are_refused_naming_the_flag(capsys, flags, message):
    code, script, err = _dry_run(capsys, *flags)
    assert code == 2 and script == "" and message in err


@pytest.mark.parametrize("time_limit", ["30", "30:00", "12:00:00", "2-00", "2-12:00:00", "infinite"])
def test_slurm_time_formats_are_accepted(capsys, time_limit):
    code, script, _ = _dry_run(capsys, "--workers", "1", "--time", time_limit)
    assert code == 0 and f"--time={time_limit}" in _directives(script)


def test_without_sbatch_it_says_where_to_run_it(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    assert main(["workers", "slurm", "--workers", "2"]) == 1
    assert "sbatch is not on PATH: run this on a Slurm login node" in capsys.readouterr().err
