"""junit.xml: a test case per objective verdict, per known answer (and event), per fault × probe
measurement, and per pair across a partition.

CI systems (GitLab, Jenkins, GitHub actions' JUnit reporters) show a suite per drill. A missed
objective is a <failure>; an inconclusive drill (baseline not clean) makes every case an
<error>, so it can never read as green.

ElementTree escapes `&`, `<`, `>` and quotes, but writes control characters as they are, and
XML 1.0 forbids most of them (a parser refuses the file); those it allows (a carriage return in
an attribute) would still reach a CI page raw. So every string of the results goes through
`visible` first, which turns each into its escape (`\\x1b`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from drills.known import expected_text, measured_text
from drills.reports.fmt import ms, recovery, wholly_inconclusive
from drills.textsafe import visible


def _visible_all(value: Any) -> Any:
    """`value` (JSON data) with `visible` applied to every string in it."""
    if isinstance(value, str):
        return visible(value)
    if isinstance(value, dict):
        return {key: _visible_all(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_visible_all(item) for item in value]
    return value


def _known_case(suite: ET.Element, name: str, known: dict[str, Any], failures: int, errors: int) -> tuple[int, int]:
    """One test case per known answer and event: a fail is a <failure>, an inconclusive one an
    <error> (it can never read as green); returns the failure and error counts."""
    case = ET.SubElement(
        suite,
        "testcase",
        classname=f"{name}.known_answers",
        name=f"{known['name']} [{known['probe']} / {known['event']} / {known['figure']}]",
        time="0",
    )
    text = (
        f"expected {expected_text(known['value_s'], known['low_s'], known['high_s'], known['tolerance_s'])} "
        f"({known['source']}); measured {measured_text(known['measured_s'], known['accuracy_s'])}: {known['reason']}"
    )
    if known["verdict"] == "fail":
        ET.SubElement(case, "failure", message=text).text = text
        return failures + 1, errors
    if known["verdict"] != "pass":
        ET.SubElement(case, "error", message=f"inconclusive: {known['reason']}").text = text
        return failures, errors + 1
    ET.SubElement(case, "system-out").text = text
    return failures, errors


def render_junit(results: dict[str, Any]) -> str:
    results = _visible_all(results)
    name = results["scenario"]["name"]
    inconclusive = wholly_inconclusive(results)
    suite = ET.Element("testsuite", name=f"drill {name}", timestamp=str(results.get("finished_at", "")))
    props = ET.SubElement(suite, "properties")
    for key, value in (("run_id", results["run_id"]), ("seed", results["seed"]), ("outcome", results["outcome"])):
        ET.SubElement(props, "property", name=key, value=str(value))
    cases = 0
    failures = errors = 0
    for verdict in results["verdicts"]:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"{name}.objectives",
            name=f"{verdict['objective']} [{verdict['probe']} / {verdict['event']}]",
            time="0",
        )
        cases += 1
        message = f"measured {verdict['measured']}, bound {verdict['bound']}"
        if inconclusive:
            ET.SubElement(case, "error", message="inconclusive: the baseline was not clean").text = message
            errors += 1
        elif verdict["passed"] is not True:
            ET.SubElement(case, "failure", message=message).text = message
            failures += 1
        else:
            ET.SubElement(case, "system-out").text = message
    for known in results.get("known_answers", []):
        failures, errors = _known_case(suite, name, known, failures, errors)
        cases += 1
    for metric in results["metrics"]:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"{name}.measurements",
            name=f"{metric['event']} ({metric['kind']}) × {metric['probe']}",
            time=f"{metric['outage_s']:.6f}",
        )
        cases += 1
        text = (
            f"outage {ms(metric['outage_s'], metric['accuracy_s'])}, longest loss "
            f"{ms(metric['max_loss_period_s'], metric['accuracy_s'])}, recovery {recovery(metric)}, "
            f"{metric['lost']} of {metric['sent']} packets lost"
        )
        if inconclusive:
            ET.SubElement(case, "error", message="inconclusive: the baseline was not clean").text = text
            errors += 1
        else:
            ET.SubElement(case, "system-out").text = text
    for pair in results.get("partition_pairs", []):
        # One case per (source, target) pair across a partition: a pair cut when it should not
        # be, or the reverse, is a failure; one that could not be judged is an error.
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"{name}.partition",
            name=f"{pair['step']}: {pair['source']} -> {pair['target']} ({pair['expected']})",
            time="0",
        )
        cases += 1
        text = (
            f"intended {pair['expected']}, observed {pair['observed']}: {pair['fault_delivered']} of "
            f"{pair['fault_sent']} delivered while the partition held; detect "
            f"{ms(pair['time_to_detect_s'], pair['detect_accuracy_s'])}, recover after lift "
            f"{ms(pair['time_to_recover_s'], pair['recover_accuracy_s'], none='never')}"
        )
        if inconclusive or pair["matches"] is None:
            ET.SubElement(case, "error", message=f"pair not judged: {pair['observed']}").text = text
            errors += 1
        elif not pair["matches"]:
            ET.SubElement(case, "failure", message=text).text = text
            failures += 1
        else:
            ET.SubElement(case, "system-out").text = text
    suite.set("tests", str(cases))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", "0")
    suites = ET.Element("testsuites", name="drills")
    suites.append(suite)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
