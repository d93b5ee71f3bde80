"""Number formatting shared by every report."""

from __future__ import annotations


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
