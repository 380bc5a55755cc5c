"""The CI security checks (.ci/security.py): the audit's verdicts on canned pip-audit reports,
the ignore file's rule (a reason per id), and the secret scan against a planted key."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _security():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("ci_security", ROOT / ".ci" / "security.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


VULN = {"id": "PYSEC-2018-28", "fix_versions": ["2.20.0"]}


def test_audit_fails_on_a_vulnerability_unless_ignored_with_a_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sec = _security()
    report = {"dependencies": [{"name": "requests", "version": "2.19.0", "vulns": [VULN]},
                               {"name": "fleetcast", "skip_reason": "not on PyPI"}]}  # fmt: skip
    assert sec.evaluate(report, {}) == 1
    assert "PYSEC-2018-28" in capsys.readouterr().out
    assert sec.evaluate(report, {"PYSEC-2018-28": "not reachable: we never call get()"}) == 0
    clean = {"dependencies": [{"name": "requests", "version": "2.32.0", "vulns": []}]}
    assert sec.evaluate(clean, {}) == 0
    sec.IGNORE = tmp_path / "ignore.txt"
    sec.IGNORE.write_text("# comment\nPYSEC-1  why it does not apply\n")
    assert sec.ignored() == {"PYSEC-1": "why it does not apply"}
    sec.IGNORE.write_text("PYSEC-1\n")
    with pytest.raises(SystemExit, match="no reason"):
        sec.ignored()


def test_audit_unreachable_service_is_reported_not_failed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sec = _security()
    skipped = {"dependencies": [{"name": "x", "skip_reason": "Dependency not found on PyPI"}]}
    assert sec.evaluate(skipped, {}) == 0
    assert "SKIPPED" in capsys.readouterr().out
    assert sec.evaluate({}, {}, "requests.exceptions.ConnectionError: Max retries exceeded") == 0
    assert sec.evaluate({}, {}, "usage error: bad flag") == 1  # not a network problem: fails


def test_secret_scan_finds_a_planted_key(tmp_path: Path) -> None:
    leak = tmp_path / "settings.py"
    leak.write_text('aws_access_key_id = "AKIA' + 'Z7QWERTYUIOPASDF"\n')
    hook = Path(sys.executable).parent / "detect-secrets-hook"
    done = subprocess.run([str(hook), "--baseline", str(ROOT / ".secrets.baseline"), str(leak)],
                          cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 1 and "AWS Access Key" in done.stdout


def test_lint_flags_string_built_sql_pickle_and_a_shell(tmp_path: Path) -> None:
    """ruff's bandit rules are on in pyproject.toml: an override reason put into SQL text, a
    pickle load and a shell are each reported (and the checked-in tree has none)."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import pickle, subprocess\n"
        "def f(con, reason):\n"
        "    con.execute(f\"insert into overrides (reason) values ('{reason}')\")\n"
        "    pickle.loads(reason)\n"
        "    subprocess.run(reason, shell=True)\n"
    )
    ruff = Path(sys.executable).parent / "ruff"
    done = subprocess.run([str(ruff), "check", "--config", str(ROOT / "pyproject.toml"),
                           "--output-format", "concise", str(bad)],
                          cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    found = {line.split()[1] for line in done.stdout.splitlines() if ": S" in line}
    assert {"S608", "S301", "S602"} <= found, done.stdout
