"""Every bench at its smallest size (`--smoke`), so an API change breaks a test instead of a bench that
nothing runs. Their figures are not asserted: wall time is for bench/, never for tests. A bench whose
reference library (bench/requirements.txt) is not installed still runs our side and says so."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = os.environ.get("TRANSFERLAB_TEST_POSTGRES_URL")


def run_bench(script: str, *args: str) -> tuple[str, dict[str, str]]:
    """The bench's output and the fields of its last line, `RESULT key=value ...`."""
    out = subprocess.run([sys.executable, f"bench/{script}", "--smoke", *args], cwd=ROOT, capture_output=True,
                         text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert out.returncode == 0, out.stderr[-3000:]
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("RESULT "), out.stdout[-3000:]
    return out.stdout, dict(part.split("=", 1) for part in last.split()[1:])


def postgres_server() -> str:
    if not POSTGRES:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must test PostgreSQL: TRANSFERLAB_TEST_POSTGRES_URL is not set (.ci/run starts a server)")
        pytest.skip("no PostgreSQL server: set TRANSFERLAB_TEST_POSTGRES_URL to run this (.ci/run does)")
    return POSTGRES


def test_probe_bench_smoke_prints_its_result_line():
    stdout, fields = run_bench("probes.py")
    assert set(fields) == {"eig_speedup", "eig_err", "trace_speedup", "trace_err", "cka_speedup", "cka_max_diff",
                           "probe_train_ratio"}
    assert math.isfinite(float(fields["probe_train_ratio"])) and float(fields["probe_train_ratio"]) > 0
    assert "CKA comparisons" in stdout or "torch-cka is not installed" in stdout


# script, the fields of its RESULT line, one that must be a finite number (our side of the bench)
BENCHES = [
    ("train.py", {"digits_seconds", "digits_acc", "mnist_acc", "speedup"}, "digits_acc"),
    ("sweep.py", {"speedup", "acc_diff", "mfu"}, None),  # nan without MNIST under ../shared/datasets
    ("hessian.py", {"eig_speedup", "eig_err", "trace_speedup", "trace_err"}, "eig_err"),
    ("cka.py", {"cka_speedup", "cka_max_diff"}, None),  # nan without torch-cka
    ("locality.py", {"loading_per_probe_before", "loading_per_probe_preferred", "wall_before", "wall_preferred"},
     "wall_preferred"),
    ("scale.py", {"device", "alexnet_img_s", "resnet18_img_s", "networks", "gpu_days", "days_on_8"}, "gpu_days"),
]  # bench/study_probes.py --smoke runs inside probes.py's; bench/reference.py is the benches' library


@pytest.mark.parametrize("script, keys, finite", BENCHES, ids=[b[0] for b in BENCHES])
def test_bench_smoke(script, keys, finite):
    _, fields = run_bench(script)
    assert set(fields) == keys
    if finite:
        assert math.isfinite(float(fields[finite]))


def test_store_bench_smoke_on_sqlite_and_postgres():
    """The pages' queries and their references; PostgreSQL too where a server is given (CI)."""
    stdout, fields = run_bench("store.py", *(["--postgres", POSTGRES] if POSTGRES else []))
    assert set(fields) == {"sqlite_scores_ms", "sqlite_slowest_ms", "postgres_scores_ms", "postgres_slowest_ms"}
    assert math.isfinite(float(fields["sqlite_scores_ms"]))
    assert math.isfinite(float(fields["postgres_scores_ms"])) == bool(POSTGRES)
    assert stdout.count("reference: every result, pivoted") == (2 if POSTGRES else 1)


def test_fleet_bench_smoke_loses_nothing():
    """A small fleet on PostgreSQL: every job finished once; one ran twice only if a live worker's
    lease ran out under load (the store still keeps one set of results: the bench checks it)."""
    stdout, fields = run_bench("fleet.py", "--postgres", postgres_server())
    assert set(fields) == {"workers", "claims_per_s", "p50_ms", "p99_ms", "recover_s", "lost", "duplicated"}
    assert fields["lost"] == "0" and math.isfinite(float(fields["recover_s"]))
    leases_lost = int(re.search(r"leases lost by live workers: (\d+)", stdout).group(1))
    assert int(fields["duplicated"]) <= leases_lost
