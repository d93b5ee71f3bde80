"""Number formatting shared by every report."""

from __future__ import annotations

from typing import Any


def ms(value_s: float | None, accuracy_s: float | None = None, *, none: str = "-") -> str:
    """`12.3 ms ± 1.0 ms`; `none` for a missing value."""
    if value_s is None:
        return none
    text = f"{value_s * 1e3:.1f} ms"
    return f"{text} ± {accuracy_s * 1e3:.1f} ms" if accuracy_s is not None else text


def recovery(metric: dict[str, object]) -> str:
    value = metric["time_to_recover_s"]
    accuracy = metric["accuracy_s"]
    assert isinstance(accuracy, float | int)
    if value is None:
        return "never recovered"
    assert isinstance(value, float | int)
    text = ms(float(value), float(accuracy))
    return text if metric.get("recovered_during_event", True) else f"{text} (when lifted)"


def wholly_inconclusive(results: dict[str, Any]) -> bool:
    """The drill as a whole is inconclusive (its baseline was not clean), not merely for a known
    answer that could not be judged (whose objectives and figures stand)."""
    if results["outcome"] != "inconclusive":
        return False
    baselines = results.get("baselines", {})
    unjudged = any(k["verdict"] == "inconclusive" for k in results.get("known_answers", []))
    return not unjudged or not baselines or any(not b.get("clean", True) for b in baselines.values())
