"""Probe speed and accuracy against the libraries a researcher would otherwise install, in one run:
the Hessian probe against PyHessian and curvlinops (bench/hessian.py), CKA against torch-cka
(bench/cka.py). Install the references first: `pip install -r bench/requirements.txt` (`make bench` does).

    .venv/bin/python bench/probes.py [--cuda]

Last line: RESULT eig_speedup=.. eig_err=.. trace_speedup=.. trace_err=.. cka_speedup=.. cka_max_diff=..
(speedups against the faster reference; errors against the exact small-net Hessian).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # torch-cka's progress bars

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cka import bench_cka  # noqa: E402
from bench.hessian import bench_hessian  # noqa: E402


def main() -> None:
    device = "cuda" if "--cuda" in sys.argv else "cpu"
    torch.set_num_threads(2)
    hessian = bench_hessian(device)
    cka = bench_cka(device)
    print(f"\nCKA: ours {cka['ours_s']:.2f} s, torch-cka {cka['ref_s']:.2f} s")
    print(f"RESULT eig_speedup={hessian['eig_speedup']:.2f} eig_err={hessian['eig_err']:.1e} "
          f"trace_speedup={hessian['trace_speedup']:.1f} trace_err={hessian['trace_err']:.1e} "
          f"cka_speedup={cka['speedup']:.1f} cka_max_diff={cka['max_diff']:.4f}")


if __name__ == "__main__":
    main()
