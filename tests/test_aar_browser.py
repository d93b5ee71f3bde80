"""aar.html in a real headless chromium (tests/browser_testing.py): the after-action report of
the hand-written exercise of tests/test_aar.py (a hold, a skip, a manual fire, a gate, a missed
objective) shows its ratings table coloured by rating, the MSEL as played, the evaluator's
override, and fetches nothing; it prints without clipping a table.

Every input is a fixed results document: no randomness, no timing."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

from browser_testing import browser_fixture, css, open_page, rows
from test_aar import exercise_results

from drills.reports import write_aar

browser = browser_fixture

# The rating cells' backgrounds (html_page's --pass-bg, --inc-bg, --fail-bg, --fail).
RATING_BG = {
    "P": "rgba(230, 244, 234, 1)",
    "S": "rgba(255, 244, 224, 1)",
    "M": "rgba(252, 232, 230, 1)",
    "U": "rgba(179, 38, 30, 1)",
}


def _aar(tmp_path: Path, ratings: str | None = None, results: dict[str, Any] | None = None) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(results or exercise_results()))
    if ratings is not None:
        (run / "ratings.yaml").write_text(ratings)
    write_aar(run)
    return run / "aar.html"


def test_the_aar_in_a_browser(browser: Any, tmp_path: Path) -> None:
    ratings = 'ratings:\n  O2.2: {rating: S, by: "Lead evaluator", reason: "statement out after 14 min"}\n'
    open_page(browser, _aar(tmp_path, ratings))
    assert browser.find_element("css selector", "header#verdict").get_attribute("class") == "verdict fail"
    assert browser.find_element("css selector", "header#verdict .outcome").text == "1 P · 2 S · 1 M"
    assert [s.get_attribute("id") for s in css(browser, "section")] == ["overview", "ratings", "msel", "analysis", "findings"]
    table = rows(browser, "table.ratings")
    assert [r[:5] for r in table] == [
        ["O1", "O1.1 Dispatch traffic back within 50 ms of a cable cut", "P", "P", "(suggested)"],
        ["O1", "O1.2 Satellite backup within 5 s", "S", "S", "(suggested)"],
        ["O2", "O2.1 LTE backhaul loss costs under 2 s", "M", "M", "(suggested)"],
        ["O2", "O2.2 Inform the public within 10 minutes", "-", "S", "Lead evaluator"],
    ]
    finals = css(browser, "table.ratings tbody tr td:nth-child(4)")
    assert [c.value_of_css_property("background-color") for c in finals] == [RATING_BG[g] for g in "PSMS"]
    msel = rows(browser, "table.msel")
    assert [(r[0], r[10], r[11]) for r in msel] == [
        ("cut-1", "time", "delivered"), ("sat-1", "fired", "delivered"), ("lte-1", "released", "delivered"), ("note-1", "-", "skipped"),
    ]  # fmt: skip
    assert [r.get_attribute("class") for r in css(browser, "table.msel tbody tr")] == ["", "", "", "inconclusive"]
    assert [r[4] for r in rows(browser, "table.holds")] == ["controller", "gate lte-1"]
    target = browser.find_element("css selector", "#target-O2\\.2")
    assert "Rated by Lead evaluator: statement out after 14 min" in target.text
    assert [r[3] for r in rows(browser, "table.plan")] == [
        "LTE backhaul loss costs under 2 s: performed with major challenges", "the runbook lacks the LTE fallback",
    ]  # fmt: skip
    assert "<script>alert(1)</script> | *x*" in browser.find_element("css selector", "#analysis").text  # shown as text


def test_the_aar_prints_without_clipping(browser: Any, tmp_path: Path) -> None:
    results = exercise_results()
    for inject in results["exercise"]["injects"]:
        inject["detail"] = "a long machine action " * 12  # a wide MSEL: it must wrap, not be cut
    open_page(browser, _aar(tmp_path, results=results))
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        # Nothing wider than the page: every table fits its wrapper.
        assert browser.execute_script(
            "return [...document.querySelectorAll('.table-wrap')].every(w => w.scrollWidth <= w.clientWidth + 1)"
        )
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    pdf = base64.b64decode(browser.print_page())
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page[^s]", pdf)) >= 3  # the MSEL, analysis, findings start pages
