"""CI security checks, run by .ci/run before the tests (stdlib only; the tools come from the dev
dependency group in uv.lock).

    python .ci/security.py secrets   # detect-secrets over every tracked file, against the baseline
    python .ci/security.py audit     # pip-audit of the locked dependencies
    python .ci/security.py audit reqs.txt   # the same check on another requirements file

secrets: fails on any secret not in `.secrets.baseline` (the audited false positives: the moto
test credentials). A new false positive: add `# pragma: allowlist secret` on its line, or
refresh the baseline with `detect-secrets scan --baseline .secrets.baseline` and commit it.

audit: fails on a known vulnerability unless its id is listed, with a reason, in
`.ci/audit-ignore.txt` (`ID  reason`). When the advisory service cannot be reached (this
machine reaches only package registries), it says so and does not fail the build.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
IGNORE = ROOT / ".ci" / "audit-ignore.txt"
BASELINE = ROOT / ".secrets.baseline"
NETWORK_HINTS = (
    "ConnectionError",
    "ConnectTimeout",
    "ReadTimeout",
    "Max retries exceeded",
    "Name or service not known",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "Connection refused",
    "SSLError",
    "ProxyError",
)


def secrets() -> int:
    files = subprocess.run(
        ["git", "ls-files", "-z"],  # noqa: S607 - the git on PATH, as in every CI job
        cwd=ROOT,
        capture_output=True,
        check=True,
        text=True,
    ).stdout.split("\0")
    files = [f for f in files if f and (ROOT / f).is_file() and f != BASELINE.name]
    done = subprocess.run(
        [str(BIN / "detect-secrets-hook"), "--baseline", str(BASELINE), *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        print(done.stdout + done.stderr)
        print(f"secret scan: FAILED ({len(files)} tracked files); see above")
        return 1
    print(f"secret scan: ok ({len(files)} tracked files, baseline {BASELINE.name})")
    return 0


def ignored() -> dict[str, str]:
    out: dict[str, str] = {}
    if not IGNORE.exists():
        return out
    for n, line in enumerate(IGNORE.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        vuln, _, reason = line.partition(" ")
        if not reason.strip():
            raise SystemExit(f"{IGNORE.name}:{n}: {vuln} has no reason: write `ID  reason`")
        out[vuln] = reason.strip()
    return out


def _uv() -> str:
    """The uv that made the venv: $UV, the Makefile's .uvtool, or one on PATH."""
    for candidate in (os.environ.get("UV"), ROOT / ".uvtool" / "bin" / "uv", shutil.which("uv")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise SystemExit("dependency audit: no uv found: run `make setup` or set UV=/path/to/uv")


def audit(requirements: str | None = None) -> int:
    """Audit the lock file's packages (or a given requirements file, to try the check)."""
    skip = ignored()
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(requirements) if requirements else Path(tmp) / "requirements.txt"
        export = [
            _uv(),
            "export",
            "--frozen",
            "--all-groups",
            "--no-emit-project",
            "--format",
            "requirements-txt",
            "-o",
            str(req),
        ]
        if not requirements:
            subprocess.run(export, cwd=ROOT, check=True, capture_output=True)
        report = Path(tmp) / "audit.json"
        cmd = [str(BIN / "pip-audit"), "-r", str(req), "--disable-pip", "--no-deps",
               "--progress-spinner", "off", "--timeout", "20", "-f", "json",
               "-o", str(report)]  # fmt: skip
        for vuln in skip:
            cmd += ["--ignore-vuln", vuln]
        try:
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            print("dependency audit: SKIPPED: the advisory service did not answer in 600 s")
            return 0
        data = json.loads(report.read_text()) if report.exists() and report.stat().st_size else {}
    return evaluate(data, skip, done.stdout + done.stderr)


def evaluate(data: dict, skip: dict[str, str], text: str = "") -> int:
    """0 = clean (or the advisory service could not be asked), 1 = a vulnerability not ignored
    or pip-audit failed for another reason. ``data`` is pip-audit's JSON report."""
    deps = data.get("dependencies", [])
    audited = [d for d in deps if "skip_reason" not in d]
    if not audited:
        if deps or any(h in text for h in NETWORK_HINTS):
            why = deps[0]["skip_reason"] if deps else text.strip().splitlines()[-1]
            print(f"dependency audit: SKIPPED: the advisory service answered for none of the "
                  f"{len(deps)} packages; it is unreachable from here ({why[:160]})")  # fmt: skip
            return 0
        print(text)
        print("dependency audit: FAILED to run (not a network problem); see above")
        return 1
    for d in deps:
        if "skip_reason" in d:
            print(f"  not audited: {d['skip_reason']}")
    found = [(d["name"], d["version"], v) for d in audited for v in d.get("vulns", [])]
    found = [f for f in found if f[2]["id"] not in skip]
    for name, version, v in found:
        fix = ", ".join(v.get("fix_versions", [])) or "none yet"
        print(f"  {name} {version}: {v['id']} (fixed in: {fix})")
    for vuln, reason in skip.items():
        print(f"  ignored {vuln}: {reason}")
    if found:
        print(f"dependency audit: FAILED: {len(found)} known vulnerabilities in {len(audited)} "
              f"packages; upgrade, or list the id with a reason in {IGNORE.name}")  # fmt: skip
        return 1
    print(f"dependency audit: ok ({len(audited)} packages audited, {len(skip)} ids ignored "
          "with reasons)")  # fmt: skip
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["secrets"] and len(sys.argv) == 2:
        sys.exit(secrets())
    if sys.argv[1:2] == ["audit"] and len(sys.argv) <= 3:
        sys.exit(audit(*sys.argv[2:]))
    raise SystemExit(f"usage: {sys.argv[0]} secrets | audit [requirements.txt]")
