"""What a benchmark ran on: CPU model, cores, RAM, load, Python and package versions; peak RSS."""

from __future__ import annotations

import os
import platform
import resource
import sys
from importlib.metadata import PackageNotFoundError, version

PACKAGES = ("duckdb", "polars", "pyarrow", "pandas", "great-expectations", "prophet",
            "statsforecast", "lightgbm", "boto3", "moto")  # fmt: skip


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _ram_gb() -> str:
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GB"
    except OSError:
        pass
    return "?"


def machine() -> str:
    versions = []
    for p in PACKAGES:
        try:
            versions.append(f"{p} {version(p)}")
        except PackageNotFoundError:
            pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return "\n".join(
        [
            f"machine: {_cpu_model()}, {os.cpu_count()} cores, {_ram_gb()} RAM, load {load}",
            f"python {sys.version.split()[0]} on {platform.platform()}",
            "packages: " + ", ".join(versions),
        ]
    )


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def table(header: tuple[str, ...], rows: list[tuple[object, ...]]) -> str:
    cells = [tuple(str(c) for c in header)] + [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                       enumerate(zip(r, widths, strict=True))) for r in cells]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def in_child(script: str, *args: str) -> dict:
    """Run ``script --stage ARGS`` in a fresh Python process (its own peak memory); it prints
    one JSON line last, which is returned."""
    import json
    import subprocess

    done = subprocess.run([sys.executable, script, "--stage", *args], capture_output=True,
                          text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{script} --stage {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
