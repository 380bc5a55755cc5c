"""The global model's cost against its accuracy: each variant of ``GBMConfig`` run through
``benchmarks/m4_hourly.py --validation`` (the last 48 h of each M4 *training* series; the test
file is not read) on a subsample of the panel, one LightGBM thread, one row per variant.

    .venv/bin/python benchmarks/gbm_cost_sweep.py /work/shared/data/m4-hourly --every 3 \\
        [--variants default,r300] [--out sweep.csv]

Prints and appends (``--out``) each variant's validation MASE, sMAPE, q90 and 80% coverage and
the CPU seconds of its two fits and calibration (the model call only).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import polars as pl

if __package__ in (None, ""):  # run as a script: make the repo importable (no effect on import)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import m4_hourly  # noqa: E402

# name -> m4_hourly.py options (on top of the GBMConfig defaults)
VARIANTS: dict[str, list[str]] = {
    "default": [],
    "r300_lr0.1": ["--rounds", "300", "--learning-rate", "0.1"],
    "r200_lr0.15": ["--rounds", "200", "--learning-rate", "0.15"],
    "leaves63": ["--leaves", "63"],
    "stride8_c75": ["--stride", "8", "--max-cutoffs", "75"],
    "c75": ["--max-cutoffs", "75"],
    "bag0.4": ["--bagging", "0.4"],
    "r300_lr0.1_bag0.4": ["--rounds", "300", "--learning-rate", "0.1", "--bagging", "0.4"],
    "r300_lr0.1_stride8_c75": [
        *("--rounds", "300", "--learning-rate", "0.1"),
        *("--stride", "8", "--max-cutoffs", "75"),
    ],
    "r200_lr0.15_bag0.4": ["--rounds", "200", "--learning-rate", "0.15", "--bagging", "0.4"],
    "r150_lr0.2_bag0.4": ["--rounds", "150", "--learning-rate", "0.2", "--bagging", "0.4"],
    "all_steps": ["--steps-every", "1"],  # every horizon step of each cutoff (before 2026-12-07)
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--every", type=int, default=3, help="every k-th series (a subsample)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", type=Path, default=None, help="append each row to this CSV")
    args = ap.parse_args(argv)
    for name in args.variants.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            csv = Path(tmp) / "row.csv"
            m4_hourly.main(
                [str(args.data_dir), "--validation", "--every", str(args.every), "--jobs", "1"]
                + ["--models", "global_gbm", "--out", str(csv), *VARIANTS[name]]
            )
            row = pl.read_csv(csv).with_columns(pl.lit(name).alias("variant"))
        row = row.select("variant", "series", "mase", "smape", "cov_q90", "cov_80", "cpu_s")
        print(row, flush=True)
        if args.out:
            exists = args.out.exists()
            with args.out.open("a") as fh:
                row.write_csv(fh, include_header=not exists)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
