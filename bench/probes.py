"""Probe speed and accuracy against the libraries a researcher would otherwise install, in one run:
the Hessian probe against PyHessian and curvlinops (bench/hessian.py), and on the `yosinski-digits`
preset the CKA comparisons of the whole study against torch-cka and the probes' time against the
training's (bench/study_probes.py). Install the references first: `pip install -r bench/requirements.txt`
(`make bench` does).

    .venv/bin/python bench/probes.py [--cuda] [--smoke]

--smoke: the study part at its smallest size, without the Hessian references (what `make test` runs).

Last line: RESULT eig_speedup=.. eig_err=.. trace_speedup=.. trace_err=.. cka_speedup=.. cka_max_diff=..
probe_train_ratio=.. (speedups against the faster reference; eig_err and trace_err against the exact
small-net Hessian; trace_speedup at equal products; cka_speedup over every comparison of the study; cka_max_diff against
torch-cka's answer in float64 (its float32 rounding alone moves it by 0.02-0.25, printed above it);
probe_train_ratio: the probes' seconds over the training's on yosinski-digits with sharpness on).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # torch-cka's progress bars

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.study_probes import bench_study_probes  # noqa: E402

NAN = float("nan")


def main() -> None:
    device = "cuda" if "--cuda" in sys.argv else "cpu"
    smoke = "--smoke" in sys.argv
    torch.set_num_threads(2)
    hessian = {}
    if not smoke:
        from bench.hessian import bench_hessian

        hessian = bench_hessian(device)
    study = bench_study_probes(device, seeds=1, smoke=smoke)
    print(f"RESULT eig_speedup={hessian.get('eig_speedup', NAN):.2f} eig_err={hessian.get('eig_err', NAN):.1e} "
          f"trace_speedup={hessian.get('trace_speedup_equal_products', NAN):.2f} "
          f"trace_err={hessian.get('trace_err', NAN):.1e} cka_speedup={study.get('cka_speedup', NAN):.1f} "
          f"cka_max_diff={study.get('cka_max_diff', NAN):.1e} probe_train_ratio={study['ratio']:.2f}")


if __name__ == "__main__":
    main()
