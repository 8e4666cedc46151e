"""Every code block of README.md runs (tests/readme_runner.py), so the README cannot drift."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_readme_block_runs_as_labelled():
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "readme_runner.py"), str(ROOT / "README.md")],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    failures = [f"README.md:{r['line']} ({r['label'] or 'no label'}): {r['error']}"
                for r in report if r["error"]]
    assert not failures, "\n\n".join(failures)
    kinds = {r["label"].split()[0] for r in report}
    # The runnable kinds are all exercised: the check cannot pass by running nothing.
    assert {"async", "sync", "transcript", "define", "source", "shell"} <= kinds
    assert sum(r["label"].startswith(("async", "sync", "transcript")) for r in report) >= 8
