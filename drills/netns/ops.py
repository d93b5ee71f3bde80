"""The namespace backend's node operations (`drills.backend.NodeOps`), one group per module:
links (ops_links), impairments (ops_impair), packet filters (ops_rules), processes, services
and exec (ops_procs), probe sockets (sockets). The container backend composes this class and
overrides only what a container does differently (drills.docker.ops)."""

from __future__ import annotations

from drills.netns.ops_impair import ImpairmentOpsMixin
from drills.netns.ops_links import LinkOpsMixin
from drills.netns.ops_procs import ProcessOpsMixin
from drills.netns.ops_rules import RuleOpsMixin
from drills.netns.sockets import SocketOpsMixin


class NetnsOps(LinkOpsMixin, ImpairmentOpsMixin, RuleOpsMixin, ProcessOpsMixin, SocketOpsMixin):
    """Node operations of a run deployed on this host's network namespaces."""
