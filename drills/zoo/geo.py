"""What a link's geography and label say: propagation delay from great-circle distance, and
capacity from the Zoo's `LinkSpeed*` attributes or its free-text `LinkLabel`."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

EARTH_RADIUS_KM = 6371.0
"""The mean radius of the Earth (IUGG), the usual one for haversine distances."""
FIBRE_KM_PER_S = 299_792.458 * 2 / 3
"""Light in fibre, about two thirds of c (refractive index ~1.5): 199,861.6 km/s, 5 µs per km."""
DEFAULT_ROUTE_FACTOR = 1.5
"""Fibre follows roads, railways and coasts, not great circles: real routes are commonly 1.2 to
2 times the great-circle distance; 1.5 is a middle value, stated in every imported file."""


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance between two points given in degrees, on a sphere of `EARTH_RADIUS_KM`."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlambda = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def delay_ms(distance_km: float, route_factor: float) -> float:
    """One-way propagation delay over `distance_km` of great circle, rounded to 0.01 ms."""
    return round(distance_km * route_factor / FIBRE_KM_PER_S * 1000.0, 2)


@dataclass(frozen=True)
class Capacity:
    """A link's capacity and how it was found: `exact` from LinkSpeed*, else read from a label
    (`bound`: the label gave a range or an upper bound, `< 10 Gbps`, `1-20Gbps`: its top is taken)."""

    rate_bps: int
    source: str  # "LinkSpeedRaw" | "LinkSpeed" | "LinkLabel"
    bound: bool = False


_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
# Carrier names seen in the Zoo's labels: SONET OC-n, SDH STM-n, T/E carriers.
_CARRIERS = {"t1": 1_544_000, "ds1": 1_544_000, "e1": 2_048_000, "e3": 34_368_000, "t3": 44_736_000, "ds3": 44_736_000}
_CARRIER = re.compile(r"\b(oc|stm)[- ]?(\d{1,3})\b|\b(t1|ds1|e1|e3|t3|ds3)\b", re.IGNORECASE)
_SPEED = re.compile(
    r"(?:(?P<low>\d+(?:\.\d+)?)\s*(?:[kmgt]\w*\s*)?(?:-|to)\s*)?(?P<high>\d+(?:\.\d+)?)\s*"
    r"(?P<unit>[kmgt]?)(?:bps|bit/s|b/s|bits?|b)\b",
    re.IGNORECASE,
)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def capacity(attrs: dict[str, str]) -> Capacity | None:
    """The capacity an edge's attributes give, or None when they give none we can read."""
    raw = _number(attrs.get("LinkSpeedRaw", ""))
    if raw is not None:
        return Capacity(round(raw), "LinkSpeedRaw")
    speed, unit = _number(attrs.get("LinkSpeed", "")), attrs.get("LinkSpeedUnits", "").strip().lower()
    if speed is not None and unit in _UNITS:
        return Capacity(round(speed * _UNITS[unit]), "LinkSpeed")
    return label_capacity(attrs.get("LinkLabel", ""))


def label_capacity(label: str) -> Capacity | None:
    """Capacity from a free-text label: "10 Gbps", "< 155 Mbps", "1-20Gbps", "OC-192", "STM-16"."""
    carrier = _CARRIER.search(label)
    if carrier:
        if carrier.group(3):
            return Capacity(_CARRIERS[carrier.group(3).lower()], "LinkLabel")
        per_unit = 51_840_000 if carrier.group(1).lower() == "oc" else 155_520_000
        return Capacity(int(carrier.group(2)) * per_unit, "LinkLabel")
    speed = _SPEED.search(label)
    if speed is None:
        return None
    high = _number(speed.group("high"))
    if high is None:
        return None
    bound = speed.group("low") is not None or "<" in label[: speed.start()]
    return Capacity(round(high * _UNITS[speed.group("unit").lower()]), "LinkLabel", bound)
