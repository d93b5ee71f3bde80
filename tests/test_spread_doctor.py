"""`drill doctor --inventory` asks every host's agent at once, through the one thread pool of
drills.remote.backend.in_parallel: a host that answers is checked, one that cannot be reached
gets its reason instead of failing the others, and the answers keep the inventory's order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drills import spread

pytestmark = pytest.mark.netns  # the local host's agent runs as root and probes this kernel

# Nothing listens on port 1 of the loopback address: ssh is refused at once, no timeout to wait for.
INVENTORY = """\
[lab]
nowhere ansible_host=127.0.0.1 ansible_port=1
here ansible_connection=local
"""


def test_every_host_is_checked_and_an_unreachable_one_gets_its_reason(tmp_path: Path, host_snapshot: Any) -> None:
    (tmp_path / "hosts.ini").write_text(INVENTORY)
    checked = spread.check_hosts(tmp_path / "hosts.ini", lambda _line: None)
    assert list(checked) == ["nowhere", "here"]
    unreachable = checked["nowhere"]
    assert isinstance(unreachable, str) and "Connection refused" in unreachable
    here = checked["here"]
    assert isinstance(here, dict) and here["root"] is True and isinstance(here["capabilities"], dict)
    lines, fit = spread.host_lines(checked)
    assert not fit
    assert lines[0].startswith("  nowhere: UNREACHABLE: ") and lines[1].startswith("  here: ")
