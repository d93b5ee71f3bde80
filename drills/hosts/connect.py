"""`python -m drills.hosts.connect HOST PORT`: the TCP connection to a host's sshd, made for SSH
(`ProxyCommand` with `ProxyUseFdpass=yes`) so that it carries no Nagle delay.

OpenSSH turns Nagle's algorithm off only for interactive sessions (a terminal, X11). The agent's
channel is not one, and its small frames then meet delayed ACKs: a request written right after
another waits up to 40 ms for the first one's acknowledgement (measured on the test lane: link-down
p99 32-45 ms through the agent, 5-8 ms without Nagle). So drills makes the connection itself,
sets TCP_NODELAY, and hands the connected socket to ssh, which then uses it directly (no relay
process, no extra hop) and exits this helper.
"""

from __future__ import annotations

import os
import socket
import sys

CONNECT_TIMEOUT_S = 10.0  # as ssh's own ConnectTimeout (drills.hosts.ssh)


def main(argv: list[str]) -> int:
    if len(argv) != 3 or not argv[2].isdigit() or not 0 < int(argv[2]) < 65536:
        print("usage: python -m drills.hosts.connect HOST PORT (SSH's ProxyCommand, with ProxyUseFdpass=yes)", file=sys.stderr)
        return 2
    try:
        conn = socket.create_connection((argv[1], int(argv[2])), timeout=CONNECT_TIMEOUT_S)
    except OSError as exc:
        print(f"connect to {argv[1]} port {argv[2]}: {exc.strerror or exc}", file=sys.stderr)
        return 255
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.settimeout(None)
    # ssh made our stdout one end of a Unix socket pair: the connected socket goes back over it.
    try:
        channel = socket.socket(fileno=os.dup(1))
        socket.send_fds(channel, [b"\0"], [conn.fileno()])
    except OSError as exc:
        print(f"cannot hand the connection to ssh (ProxyUseFdpass=yes missing?): {exc.strerror or exc}", file=sys.stderr)
        return 255
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
