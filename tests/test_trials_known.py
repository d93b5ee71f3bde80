"""`drill run --trials 2` of a scenario with known answers, on real namespaces: the validation
table is printed and written (trials.json, trials.md), every trial's reports carry the known
answers, and a failed known answer fails the set (exit 1)."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from drills.results import results_schema

pytestmark = pytest.mark.netns

REPO = Path(__file__).resolve().parent.parent

# A second answer that cannot hold: a 2 s cut with no backup path is not a 1 s outage.
WRONG = """\
  - name: wrong-on-purpose
    probe: stream
    step: cut
    figure: outage
    value: 1s
    tolerance: 100ms
    source: "a wrong answer: the table must say FAIL"
"""


def test_trials_of_known_answers_print_and_write_the_validation_table(
    tmp_path: Path, state_dir: Path, host_snapshot: object
) -> None:
    text = (REPO / "scenarios" / "known-cut-no-backup.yaml").read_text()
    # The example as it is, but for its tolerance: 50 ms holds on an idle or busy host; a test must hold
    # on a loaded one too, where the revert may be issued tens of ms late (the outage is what the
    # kernel did, and the stream measures it, so the figure is then longer than 2 s: truly).
    # 300 ms is far beyond any lateness seen; the verdict rule itself is tested in test_known.py.
    assert "tolerance: 50ms" in text and "duration: 8s" in text
    text = text.replace("tolerance: 50ms", "tolerance: 300ms").replace("duration: 8s", f"{WRONG}duration: 8s")
    path = tmp_path / "known.yaml"
    path.write_text(text)
    out = tmp_path / "trials"
    proc = subprocess.run(
        [sys.executable, "-m", "drills", "--state-dir", str(state_dir), "run", str(path), "--out", str(out),
         "--trials", "2", "--no-live"],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # the wrong answer failed in both trials
    assert "Traceback" not in proc.stderr
    summary = json.loads((out / "trials.json").read_text())
    assert summary["outcomes"] == ["failed", "failed"] and summary["outcome"] == "failed"
    right, wrong = summary["validation"]
    assert (right["name"], right["verdict"], right["passed"], right["trials"]) == ("cut-no-backup", "PASS", 2, 2)
    assert 1.7 <= right["measured"]["min_s"] <= right["measured"]["median_s"] <= right["measured"]["max_s"] <= 2.3
    assert 0 < right["measured"]["accuracy_s"] < 0.3
    assert (wrong["name"], wrong["verdict"], wrong["failed"]) == ("wrong-on-purpose", "FAIL", 2)
    # Printed: the validation table with both verdicts.
    assert "validation: known answers over the trials" in proc.stdout
    assert "cut-no-backup" in proc.stdout and "wrong-on-purpose" in proc.stdout
    # trials.md: the same table, for a README.
    table = (out / "trials.md").read_text()
    assert "## Validation: known answers" in table
    assert any(line.startswith("| cut-no-backup | outage | 2000.0 ± 300.0 ms |") and line.endswith("| 2 of 2 | PASS |")
               for line in table.splitlines())  # fmt: skip
    assert any(line.startswith("| wrong-on-purpose |") and line.endswith("| 0 of 2 | FAIL |") for line in table.splitlines())
    # Each trial: results.json by the schema, one JUnit case per known answer, the Markdown table.
    for trial in ("trial-1", "trial-2"):
        results = json.loads((out / trial / "results.json").read_text())
        jsonschema.Draft202012Validator(results_schema()).validate(results)
        assert [(k["name"], k["verdict"]) for k in results["known_answers"]] == [
            ("cut-no-backup", "pass"), ("wrong-on-purpose", "fail")
        ]  # fmt: skip
        suite = ET.parse(out / trial / "junit.xml").getroot().find("testsuite")
        assert suite is not None and suite.get("failures") == "1"
        cases = [c for c in suite.iter("testcase") if (c.get("classname") or "").endswith(".known_answers")]
        assert len(cases) == 2 and cases[1].find("failure") is not None
        assert "## Known answers" in (out / trial / "report.md").read_text()
