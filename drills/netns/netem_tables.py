"""netem's delay distribution tables, generated here exactly as iproute2 generates its *.dist files.

netem shapes jitter by drawing from a table the user sends (TCA_NETEM_DELAY_DIST): 4096 signed
16-bit values, in units of 1/8192 of the jitter (NETEM_DIST_SCALE). iproute2 ships the tables as
text files built at compile time by netem/normal.c, pareto.c and paretonormal.c; where they are
installed is distribution-specific (and a host without iproute2 has none), so the same arithmetic
is done here, deterministically: the same IEEE doubles, the same loop, round-half-even like C's
rint(). tests/test_tc.py checks the result against iproute2's files when they are present.
`uniform` needs no table: it is netem's own distribution.
"""

from __future__ import annotations

import math
from functools import cache

TABLE_SIZE = 16384  # the generators' resolution; every 4th value is kept
DIST_SCALE = 8192  # NETEM_DIST_SCALE: a table value of 8192 is one jitter
PARETO_SHAPE = 3.0
SHORT_MIN, SHORT_MAX = -32768, 32767

DISTRIBUTIONS = ("normal", "pareto", "paretonormal")


def _normal_cdf(x: float) -> float:
    return 0.5 + 0.5 * math.erf(x / math.sqrt(2.0))


@cache
def _inverse_normal() -> tuple[float, ...]:
    """normal.c's inverse CDF by sweeping x: table[rint(N * cdf(x))] = x, the last x wins."""
    table = [0.0] * (TABLE_SIZE + 1)
    x = -10.0
    while x < 10.05:
        table[round(TABLE_SIZE * _normal_cdf(x))] = x
        x += 0.00005  # accumulated, as in C: the rounding drift is part of the reference tables
    return tuple(table)


def _clamp(value: int) -> int:
    return min(max(value, SHORT_MIN), SHORT_MAX)


def _pareto_value(i: int) -> int:
    """paretonormal.c's paretovalue(): the Pareto quantile at 1 - 4i/65536, centred and scaled."""
    fraction = (65536 - 4 * i) / 65536
    value = 1.0 / math.pow(fraction, 1.0 / PARETO_SHAPE)
    value = (value - 1.5) * (4.0 / 3.0) * DIST_SCALE
    return round(min(value, 32767.0))


@cache
def table(name: str) -> tuple[int, ...]:
    """The 4096 values of distribution `name` (normal, pareto, paretonormal)."""
    if name == "normal":
        inverse = _inverse_normal()
        return tuple(_clamp(round(inverse[i] * DIST_SCALE)) for i in range(0, TABLE_SIZE, 4))
    if name == "pareto":
        values = []
        for i in range(65536, 0, -16):  # pareto.c
            value = (1.0 / math.pow(i / 65536, 1.0 / PARETO_SHAPE) - 1.5) * (4.0 / 3.0) * DIST_SCALE
            values.append(round(min(value, 32767.0)))
        return tuple(values)
    if name == "paretonormal":
        inverse = _inverse_normal()
        values = []
        for i in range(0, TABLE_SIZE, 4):
            normal = round(inverse[i] * DIST_SCALE)
            # C's integer division truncates toward zero; Python's // floors.
            values.append(_clamp(int((normal + 3 * _pareto_value(i)) / 4)))
        return tuple(values)
    raise ValueError(f"no netem distribution table named {name!r} (known: {', '.join(DISTRIBUTIONS)})")


def parse_dist_file(text: str) -> tuple[int, ...]:
    """The values of an iproute2 *.dist file (comment lines start with #)."""
    return tuple(int(word) for line in text.splitlines() if not line.lstrip().startswith("#") for word in line.split())
