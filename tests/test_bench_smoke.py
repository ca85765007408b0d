"""The benches at their smallest size, so an API change cannot silently break them (their figures are
not asserted: wall time is for bench/, never for tests)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_probe_bench_smoke_prints_its_result_line():
    out = subprocess.run([sys.executable, "bench/probes.py", "--smoke"], cwd=ROOT, capture_output=True, text=True,
                         timeout=900, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert out.returncode == 0, out.stderr[-3000:]
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("RESULT ")
    fields = dict(part.split("=") for part in last.split()[1:])
    assert set(fields) == {"eig_speedup", "eig_err", "trace_speedup", "trace_err", "cka_speedup", "cka_max_diff",
                           "probe_train_ratio"}
    assert math.isfinite(float(fields["probe_train_ratio"])) and float(fields["probe_train_ratio"]) > 0
    assert "CKA comparisons" in out.stdout or "torch-cka is not installed" in out.stdout
