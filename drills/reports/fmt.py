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


def steal_text(host_steal_s: object) -> str:
    """The method's line on CPU time the host took while the clock ran (results.json
    `method.host_steal_s`); empty when the kernel did not say (or an older results.json)."""
    if not isinstance(host_steal_s, int | float) or isinstance(host_steal_s, bool):
        return ""
    if host_steal_s <= 0:
        return "Host steal time while the clock ran: none (no CPU time was taken from this machine by its host)."
    return (
        f"Host steal time while the clock ran: {host_steal_s * 1e3:.0f} ms (the hypervisor took the CPUs from this "
        "machine; a probe sender held back then samples less often, and the accuracy of the figures it touches states it)."
    )
