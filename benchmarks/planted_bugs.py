"""Plant each one-line bug of issue 14 in the code, run the rule's own test, put the code back.

    .venv/bin/python benchmarks/planted_bugs.py [--only R2-band,...]

Each bug is a (file, original text, planted text) replacement that must match exactly once; the
test named after the rule must FAIL with the bug and (run separately) pass without it. The tree
is restored after each bug, also on Ctrl-C. Runs in this checkout: the editable install of
.venv points here (a copy of the tree would import the original code).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
T = "tests/test_reliability.py::"

BUGS: list[tuple[str, str, str, str, str]] = [
    # (name, file, original, planted, test)
    ("R1-step-down-off-by-one", "models/policy.py",
     "desired = base - f.max_step_down\n", "desired = base - f.max_step_down + 1\n",
     T + "test_r01_scale_in_step_is_exactly_the_limit"),
    ("R2-band-removed", "models/policy.py",
     "if desired < base and base - desired <= f.tolerance * base:",
     "if False and desired < base and base - desired <= f.tolerance * base:",
     T + "test_r02_no_call_inside_the_tolerance_band"),
    ("R2-window-keeps-latest", "models/policy.py",
     "stabilised = max([desired, *window])", "stabilised = max([desired, *window[-1:]])",
     T + "test_r02_oscillating_forecast_scale_in_waits_out_the_window"),
    ("R5-final-busy-floor", "models/policy.py",
     "        target = busy\n", "        pass\n",
     T + "test_r05_busy_floor_holds_under_an_override_and_a_max"),
    ("R5-apply-busy-floor", "fleetcast/resources/aws.py",
     "        target = floor\n", "        pass\n",
     T + "test_r06_apply_reads_the_group_again_after_planning"),
    ("R6-apply-uses-plan-state", "fleetcast/stages/allocate.py",
     "fresh = fresh_states.get(d.asg_name) or backend.describe(d.asg_name)", "fresh = state",
     T + "test_r06_apply_reads_the_group_again_after_planning"),
    ("R9-upsert-without-anti-join", "sql/queries/ingest_metrics_insert_new.sql",
     "anti join (", "left join (",
     T + "test_r09_a_rerun_past_the_checksum_adds_nothing"),
    ("R10-wide-row-dropped", "models/records.py",
     'return Normalised("metrics", frame, empty)',
     'return Normalised("metrics", frame, _no_drops())',
     T + "test_r10_wide_file_every_row_stored_or_quarantined"),
    ("R12-tag-present-is-enough", "fleetcast/resources/aws.py",
     'return str(state.tags.get(allowed_tag, "")).lower() == MANAGED_VALUE',
     "return allowed_tag in state.tags",
     T + "test_r12_group_off_the_allow_list_is_refused"),
    ("R12-iam-tagkeys-condition-lost", "iam/fleetcast-policy.json",
     '        },\n        "ForAllValues:StringEquals": {\n          "aws:TagKeys": [\n'
     '            "fleetcast:processes-per-instance"\n          ]\n        }\n',
     "        }\n",
     T + "test_r12_shipped_iam_policy_is_least_privilege"),
    ("R14-reason-in-sql-text", "fleetcast/stages/allocate.py",
     'con.execute(db.sql("override_insert"), params).fetchall()',
     "con.execute(db.sql(\"override_insert\").replace(\"$reason\", f\"'{params.pop('reason')}'\"), params).fetchall()",  # noqa: E501
     T + "test_r14_override_reason_with_a_quote_is_bound_as_a_value"),
    ("R16-last-part-only", "fleetcast/resources/landing.py",
     "if current.is_symlink():", "if current == absolute and current.is_symlink():",
     T + "test_r16_links_that_stay_inside_the_landing_folder_are_refused_too"),
]  # fmt: skip


def run(test: str) -> tuple[bool, float, str]:
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/pytest"), "-q", "-x", "-p", "no:cacheprovider", test],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        preexec_fn=lambda: os.nice(10),  # the machine is shared: run the tests niced
    )  # fmt: skip
    why = next((ln[1:].strip() for ln in proc.stdout.splitlines() if ln.startswith("E ")), "")
    return proc.returncode == 0, time.monotonic() - t0, why


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--only", default="", help="comma-separated bug names")
    p.add_argument("--control", action="store_true", help="also run each test without the bug")
    args = p.parse_args(argv)
    only = {n for n in args.only.split(",") if n}
    missed = 0
    print(f"{'bug':34} {'test':62} {'with bug':>9} {'clean':>6}")
    for name, file, original, planted, test in BUGS:
        if only and name not in only:
            continue
        path = ROOT / file
        text = path.read_text()
        if text.count(original) != 1:
            print(f"{name}: the original text is not found exactly once in {file}")
            return 2
        try:
            path.write_text(text.replace(original, planted))
            passed, secs, why = run(test)
        finally:
            path.write_text(text)
        clean = ""
        if args.control:
            clean = "pass" if run(test)[0] else "FAIL"
        verdict = "caught" if not passed else "MISSED"
        missed += passed
        print(f"{name:34} {test.split('::')[1][:62]:62} {verdict:>9} {clean:>6}  ({secs:.0f} s)")
        if why:
            print(f"    {why[:150]}")
    print(f"{missed} missed")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
