"""Mutation testing of the safety-critical modules with mutmut, one module at a time.

    make mutation                                   # every module below
    .venv/bin/python benchmarks/mutation.py models/policy.py [--fresh] [--children 1]

Each module runs in its own scratch copy of the tree (``.mutation/<module>/``, git-ignored) with
the narrowest test selection that covers it (``MODULES``), niced, in mutmut's forkserver mode
(polars hangs in a plainly forked child). mutmut puts its ``mutants/`` copy first on sys.path
and removes the scratch root, so the tests import the mutated code, not the checkout the
editable install points at (mutmut's forced-fail check stops the run if they do not).

Prints per module: mutants, killed (timeouts count as killed), survived, no tests, equivalent
(listed in ``benchmarks/mutation_equivalent.toml`` with a one-line reason each) and the score
``killed / (total - equivalent)``; then every survivor not marked equivalent, with its diff.
Not in CI: a module takes minutes to tens of minutes on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = ROOT / ".mutation"
BIN = Path(sys.executable).parent
COPY = ("fleetcast", "models", "tasks", "flows", "sql", "iam", "tests", "pyproject.toml",
        "prefect.yaml")  # fmt: skip
EQUIVALENT = Path(__file__).with_name("mutation_equivalent.toml")

# module -> the tests that cover it (narrowest first; no test that starts a subprocess of
# fleetcast, which would import the unmutated checkout)
MODULES: dict[str, list[str]] = {
    "models/names.py": ["tests/test_foundation.py"],
    # the literal cases: the Hypothesis properties (18 s a run) made every survivor cost 20 s
    "models/policy.py": [
        "tests/test_policy.py",
        "tests/test_policy_edges.py",
        "-k",
        "not property",
    ],
    "fleetcast/resources/landing.py": ["tests/test_landing.py"],
    "fleetcast/resources/registry.py": ["tests/test_registry.py"],
    # apply_decision's rules on the recorded backend, AwsBackend's exact requests on moto: about
    # 12 s a run; test_aws_capacity (26 s, end to end on moto) pins nothing these do not
    "fleetcast/resources/aws.py": ["tests/test_aws_backends.py", "tests/test_aws_backend_calls.py"],
    # its pinned tests (about 10 s for all; test_ingest.py and the R9/R10 tests took 145 s, most
    # of it the CLI, Prefect and one GX import per test process, which the pinned file makes in
    # the fork server)
    "fleetcast/stages/ingest.py": ["tests/test_ingest_pinned.py"],
}


def _sync(module: str, fresh: bool) -> Path:
    work = SCRATCH / module.replace("/", "__").removesuffix(".py")
    if fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    for name in COPY:
        src, dst = ROOT / name, work / name
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.duckdb*"))  # fmt: skip
        else:
            shutil.copy2(src, dst)
    text = (work / "pyproject.toml").read_text()
    last = text.rsplit("\n[", 1)[-1]
    assert last.startswith("tool.mutmut]"), "[tool.mutmut] must be the last table"
    (work / "pyproject.toml").write_text(
        text + "\n# written by benchmarks/mutation.py for this module\n"
        f"only_mutate = {json.dumps([module])}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(MODULES[module])}\n"
    )
    return work


def _results(work: Path, module: str) -> dict[str, int]:
    meta = work / "mutants" / (module + ".meta")
    data = json.loads(meta.read_text()) if meta.exists() else {"exit_code_by_key": {}}
    return {k: v for k, v in data["exit_code_by_key"].items()}


def _diff(work: Path, name: str) -> str:
    out = subprocess.run([str(BIN / "mutmut"), "show", name], cwd=work, capture_output=True,
                         text=True, timeout=120).stdout  # fmt: skip
    lines = [ln for ln in out.splitlines() if ln.startswith(("-", "+")) and
             not ln.startswith(("---", "+++"))]  # fmt: skip
    return " / ".join(ln.strip() for ln in lines)[:300]


def _equivalent() -> dict[str, dict[str, str]]:
    """module -> {diff text: reason}: a survivor is equivalent when its diff is listed."""
    if not EQUIVALENT.exists():
        return {}
    data = tomllib.loads(EQUIVALENT.read_text())
    return {m: {e["diff"]: e["reason"] for e in entries} for m, entries in data.items()}


def _work(module: str) -> Path:
    return SCRATCH / module.replace("/", "__").removesuffix(".py")


def run_module(
    module: str, *, fresh: bool, children: int, report: bool, mutants: list[str]
) -> dict[str, object]:
    from mutmut.stats import status_by_exit_code

    work, returncode = _work(module), 0
    log = work / "mutmut.log"
    if not report:
        work = _sync(module, fresh)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(POLARS_MAX_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
        if module == "fleetcast/resources/aws.py":  # one moto server for every mutant's tests
            from fleetcast.resources.local_aws import start_moto

            moto = start_moto(log=work / "moto.log")
            env["FLEETCAST_TEST_MOTO_URL"] = moto.url
        with log.open("w") as fh:
            returncode = subprocess.run(
                [str(BIN / "mutmut"), "run", "--max-children", str(children), *mutants],
                cwd=work, env=env, stdout=fh, stderr=subprocess.STDOUT,
                preexec_fn=lambda: os.nice(10),
            ).returncode  # fmt: skip
        if "FLEETCAST_TEST_MOTO_URL" in env:
            moto.stop()
    codes = _results(work, module)
    if report and not codes:  # never run here: not a score of 100%
        return {"module": module, "error": "no results: run it first (without --report)"}
    if returncode != 0 and not codes:
        tail = log.read_text()[-2000:] if log.exists() else ""
        return {"module": module, "error": f"mutmut exited {returncode}:\n{tail}"}
    statuses = {k: status_by_exit_code[v] for k, v in codes.items()}
    equivalent = _equivalent().get(module, {})
    survivors, marked = [], []
    for name, status in sorted(statuses.items()):
        if status in ("survived", "no tests", "suspicious", "skipped"):
            diff = _diff(work, name)
            (marked if diff in equivalent else survivors).append((name, status, diff))
    killed = sum(s in ("killed", "timeout", "caught by type check") for s in statuses.values())
    unchecked = sum(s == "not checked" for s in statuses.values())
    denom = len(statuses) - len(marked) - unchecked
    return {
        "module": module,
        "total": len(statuses),
        "killed": killed,
        "survived": sum(s == "survived" for s in statuses.values()),
        "no_tests": sum(s == "no tests" for s in statuses.values()),
        "equivalent": len(marked),
        "unchecked": unchecked,
        "score": killed / denom if denom else 1.0,
        "survivors": survivors,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("modules", nargs="*", default=list(MODULES), help="default: all")
    p.add_argument("--fresh", action="store_true", help="forget earlier results")
    p.add_argument("--children", type=int, default=1, help="parallel mutants (shared machine)")
    p.add_argument("--target", type=float, default=0.90)
    p.add_argument("--report", action="store_true", help="summarise the last results, no run")
    p.add_argument("--mutants", nargs="*", default=[], help="only these mutant names (globs)")
    args = p.parse_args(argv)
    rows = []
    for module in args.modules:
        if module not in MODULES:
            p.error(f"{module}: not one of {', '.join(MODULES)}")
        r = run_module(module, fresh=args.fresh, children=args.children, report=args.report,
                       mutants=args.mutants)  # fmt: skip
        rows.append(r)
        if "error" in r:
            print(f"{module}: {r['error']}")
            continue
        print(f"{module}: survivors not marked equivalent")
        for name, status, diff in r["survivors"]:  # type: ignore[attr-defined]
            print(f"  {status:9} {name}: {diff}")
    print(f"\n{'module':34} {'mutants':>7} {'killed':>6} {'survived':>8} {'no tests':>8} "
          f"{'equiv.':>6} {'not run':>7} {'score':>6}")  # fmt: skip
    ok = True
    for r in rows:
        if "error" in r:
            print(f"{r['module']:34} error")
            ok = False
            continue
        print(f"{r['module']:34} {r['total']:>7} {r['killed']:>6} {r['survived']:>8} "
              f"{r['no_tests']:>8} {r['equivalent']:>6} {r['unchecked']:>7} "
              f"{r['score']:>6.1%}")  # fmt: skip
        ok &= r["score"] >= args.target and not r["unchecked"]  # type: ignore[operator]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
