"""Checks of single text values of a scenario, before anything uses them.

Interface names reach netlink, tc and nft scripts (inside quotes); commands and environments
reach execve and Docker; DNS names and HTTP paths go on the wire. Each check returns what is
wrong, said so that the author knows what to write instead, or None when the value is fine;
`validator` turns one into a pydantic validator for drills.scenario.model.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import TypeVar

from drills.scenario import limits

IFNAME_MAX_BYTES = 15  # IFNAMSIZ - 1: the kernel's limit on interface names
# Linux refuses '/', ':', whitespace and NUL (dev_valid_name); we also keep out what nft or tc
# would read as syntax or a wildcard (quotes, '\\', '*', '%', '{', ';', ...) and anything that is
# not printable ASCII: names are letters, digits and '_', '.', '-', as every example writes them.
_IFNAME = re.compile(r"[A-Za-z0-9_.-]+")
_ENV_KEY = re.compile(r"[^=\x00]+")
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
DNS_NAME_MAX_BYTES = 253
T = TypeVar("T")


def printable(text: str) -> str:
    """`text` with every character that is not printable escaped as Python writes it (`\\x1b`)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def number(value: object) -> str:
    """A number as a message writes it; one too long to print (a 5,000-digit hexadecimal YAML
    integer: Python refuses to convert it to text) by its size."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"
    return repr(value) if not isinstance(value, str) else value


def shown(text: str, limit: int = 40) -> str:
    """`text` quoted for a message: characters that are not printable (NUL, ESC, other control
    characters, bidirectional overrides) escaped as Python writes them, long text cut."""
    escaped = printable(text)
    return f"'{escaped[:limit]}...'" if len(escaped) > limit else f"'{escaped}'"


def interface_name(name: str) -> str | None:
    """What Linux (and our use in nft scripts) would refuse in an interface name."""
    size = len(name.encode())
    if size > IFNAME_MAX_BYTES:
        return f"interface name {shown(name)} is {size} bytes; Linux allows at most {IFNAME_MAX_BYTES}: shorten it"
    if not _IFNAME.fullmatch(name) or name in (".", ".."):
        return f"{shown(name)} is not a valid interface name; use letters, digits, '-', '_' or '.' (at most {IFNAME_MAX_BYTES})"
    if name == "lo":
        return "'lo' is the node's loopback; name link interfaces otherwise (eth1, wan0, ...)"
    return None


def _control(text: str) -> str | None:
    """The first NUL or other control character of `text` (tab and newline are allowed), named."""
    found = next((c for c in text if (ord(c) < 0x20 and c not in "\t\n") or ord(c) == 0x7F), None)
    if found is None:
        return None
    return "a NUL byte" if found == "\0" else f"the control character {shown(found)}"


def command_text(text: str) -> str | None:
    """A command, argument or other text handed to a process: no NUL (execve cuts there), no
    control characters but tab and newline, bounded."""
    if len(text.encode()) > limits.MAX_TEXT_BYTES:
        return f"this text is {len(text.encode())} bytes; at most {limits.MAX_TEXT_BYTES} are accepted"
    bad = _control(text)
    if bad is not None:
        return f"{shown(text)} contains {bad}; remove it (commands and their arguments are plain text)"
    return None


def env_key(key: str) -> str | None:
    """An environment variable name: not empty, no '=' (it ends the name), no NUL."""
    if not _ENV_KEY.fullmatch(key) or _control(key) is not None:
        return (
            f"{shown(key)} is not an environment variable name: it must be non-empty, without '=', "
            "NUL or control characters (such as LOG_LEVEL)"
        )
    return None


def environment(env: dict[str, str]) -> str | None:
    """Every key and value of an environment."""
    for key, value in env.items():
        problem = env_key(key)
        if problem is None and (problem := command_text(value)) is not None:
            problem = f"the value of {shown(key)}: {problem}"
        if problem is not None:
            return problem
    return None


def dns_name(name: str) -> str | None:
    """A name to query: labels of letters, digits, '-' (not at either end) and '_' (as in
    `_dmarc.example.org`), 1 to 63 bytes each, at most 253 in all; an internationalised name is
    checked in its IDNA (xn--) form, as the probe sends it; '.' alone is the root."""
    if name == ".":
        return None
    hint = "write a name such as www.example.org"
    try:  # the codec also refuses empty and long labels: ASCII names get the messages below
        ascii_name = name if name.isascii() else name.encode("idna").decode("ascii")
    except UnicodeError:
        return f"{shown(name)} is not a DNS name; {hint}"
    if len(ascii_name.rstrip(".")) > DNS_NAME_MAX_BYTES:
        return f"{shown(name)} is {len(ascii_name)} bytes; a DNS name has at most {DNS_NAME_MAX_BYTES}"
    labels = ascii_name[:-1].split(".") if ascii_name.endswith(".") else ascii_name.split(".")
    bad = next((label for label in labels if not _DNS_LABEL.fullmatch(label)), None)
    if bad is not None:
        why = "an empty label" if not bad else f"the label {shown(bad)}"
        return (
            f"{shown(name)} is not a DNS name: {why} is not 1 to 63 letters, digits, '-' or '_' "
            f"(no '-' at either end); {hint}"
        )
    return None


def http_path(path: str) -> str | None:
    """The request target of an HTTP GET: starts with '/', printable ASCII without spaces (CR or
    LF would end the request line and inject headers); encode anything else as %XX."""
    if not path.startswith("/"):
        return f"{shown(path)} is not an HTTP path; start it with '/', such as /health"
    if any(not 0x21 <= ord(c) <= 0x7E for c in path) or len(path) > 8192:
        return (
            f"{shown(path)} is not an HTTP path: write it in printable ASCII without spaces or line "
            "breaks (percent-encode the rest: a space is %20), at most 8192 bytes"
        )
    return None


def each(check: Callable[[str], str | None]) -> Callable[[Iterable[str]], str | None]:
    """`check` applied to every item of a list; the first problem found."""

    def check_all(items: Iterable[str]) -> str | None:
        return next((p for p in map(check, items) if p is not None), None)

    return check_all


def validator(check: Callable[[T], str | None]) -> Callable[[T], T]:
    """A pydantic AfterValidator from a check: the check's message becomes the problem."""

    def validate(value: T) -> T:
        problem = check(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    return validate


_SYSCTL_KEY = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_/-]+)*")


def sysctls(settings: dict[str, str | int]) -> str | None:
    """Keys are dotted names (an interface with a dot in its name is written with '/', as
    sysctl(8) does: net.ipv4.conf.eth0/100.forwarding); values are one line of printable text."""
    for key, value in settings.items():
        if not _SYSCTL_KEY.fullmatch(key):
            return f"{shown(key)} is not a sysctl name; write it dotted, such as net.ipv4.ip_forward"
        text = str(value)
        if any(not c.isprintable() for c in text) or len(text) > 4096:
            return f"the value of {key}, {shown(text)}, is not one line of printable text"
    return None


# linux/capability.h, as Docker's cap_add takes them (with or without CAP_), and ALL.
CAPABILITIES = frozenset(
    [
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
        "ALL",
    ]
)


def capability(name: str) -> str | None:
    """A Linux capability Docker can add: Docker refuses an unknown one only when it creates the
    container, after the rest of the testbed is built."""
    if name.upper().removeprefix("CAP_") in CAPABILITIES:
        return None
    close = difflib.get_close_matches(name.upper().removeprefix("CAP_"), CAPABILITIES, n=1)
    hint = f"; did you mean {close[0]}?" if close else " (such as NET_ADMIN, NET_RAW, SYS_ADMIN)"
    return f"{shown(name)} is not a Linux capability{hint}"


# Docker's reference grammar (distribution/reference): an optional registry host, lowercase path
# components, an optional tag and digest. Docker refuses anything else only when it creates the
# container, after the rest of the testbed is built.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    rf"(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?"
)


def image(reference: str) -> str | None:
    """A container image reference Docker accepts (such as drills-node:latest, frrouting/frr:v8.4.0)."""
    if len(reference) <= 255 and _IMAGE.fullmatch(reference):
        return None
    return (
        f"{shown(reference)} is not an image reference; write [registry/]name[:tag] in lowercase, "
        "such as drills-node:latest or frrouting/frr:v8.4.0"
    )


# Ranges no testbed address may come from: the kernel refuses some (IPv6 multicast, ::1, ::)
# and the rest never carry a probe between nodes (127/8 is host-scoped, 0/8 is "this host").
_SPECIAL = tuple(
    ipaddress.ip_network(net)
    for net in ("0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/4", "255.255.255.255/32", "::/128", "::1/128", "ff00::/8")
)


def _special(text: str, hits: Callable[[ipaddress.IPv4Network | ipaddress.IPv6Network], bool]) -> str | None:
    special = next((net for net in _SPECIAL if hits(net)), None)
    if special is None:
        return None
    return (
        f"{text} lies in {special}, which no testbed interface can use (loopback, multicast, unspecified or "
        "broadcast); take addresses from 198.18.0.0/15, 10.0.0.0/8 or fd00::/8"
    )


def interface_address(text: str) -> str | None:
    """An interface address `address/prefix` (already parsed once) outside the special ranges."""
    address = ipaddress.ip_interface(text).ip
    return _special(text, lambda net: net.version == address.version and address in net)


def address_pool(text: str) -> str | None:
    """A pool of testbed addresses (a prefix, already parsed once) overlapping no special range."""
    pool = ipaddress.ip_network(text)
    return _special(text, lambda net: net.version == pool.version and pool.overlaps(net))
