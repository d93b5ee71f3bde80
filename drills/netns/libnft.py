"""libnftables in this process (ctypes): the `nft` command's own library, without its process.
drills.netns.ops_rules uses it for what drills.netns.nfmsg does not encode (and `nft` itself
only where this library is missing).

A context's netlink socket belongs to the network namespace that was current when the context
was created (nftables opens it in `nft_ctx_new`), so each node gets its own context, created by
a thread that entered the node's namespace and kept for the run: every later command, issued
from any thread, goes to that node's kernel (checked with two namespaces in
tests/test_libnft.py). Contexts are made before the drill clock starts (`RuleOpsMixin.warm`):
on the clock a command costs its parse, the kernel's transaction and its acknowledgement, with
no process started and no wait on a child (about 0.3 ms here against 4-6 ms for `nft`).

A context serves one caller at a time (libnftables keeps per-context caches and buffers): each
carries a lock. ctypes drops the GIL during a call, so probes keep running meanwhile.

All ctypes use of libnftables is here; failures become BackendError (what, node, nft's message).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from drills.errors import BackendError
from drills.netns import kernel

# libnftables' soname on Debian/Ubuntu (package libnftables1) and RHEL (nftables).
SONAMES = ("libnftables.so.1",)
NFT_CTX_DEFAULT = 0
NFT_CTX_OUTPUT_JSON = 1 << 4  # enum nft_output_flags (nftables/libnftables.h)
ERROR_LINES_MAX = 2  # of nft's error message, in a BackendError


@dataclass(frozen=True)
class Library:
    """The loaded libnftables with the prototypes drills uses."""

    cdll: ctypes.CDLL

    def new(self) -> int:
        ctx: int | None = self.cdll.nft_ctx_new(NFT_CTX_DEFAULT)
        if not ctx:
            raise BackendError("libnftables could not create a context (out of memory, or no netlink socket)")
        # Output and errors into buffers, not the process's stdout and stderr; listings as JSON.
        self.cdll.nft_ctx_buffer_output(ctx)
        self.cdll.nft_ctx_buffer_error(ctx)
        self.cdll.nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON)
        return ctx


def _prototypes(cdll: ctypes.CDLL) -> None:
    ptr, text = ctypes.c_void_p, ctypes.c_char_p
    cdll.nft_ctx_new.argtypes, cdll.nft_ctx_new.restype = [ctypes.c_uint32], ptr
    cdll.nft_ctx_free.argtypes, cdll.nft_ctx_free.restype = [ptr], None
    cdll.nft_ctx_buffer_output.argtypes, cdll.nft_ctx_buffer_output.restype = [ptr], ctypes.c_int
    cdll.nft_ctx_buffer_error.argtypes, cdll.nft_ctx_buffer_error.restype = [ptr], ctypes.c_int
    cdll.nft_ctx_output_set_flags.argtypes, cdll.nft_ctx_output_set_flags.restype = [ptr, ctypes.c_uint], None
    cdll.nft_ctx_get_output_buffer.argtypes, cdll.nft_ctx_get_output_buffer.restype = [ptr], text
    cdll.nft_ctx_get_error_buffer.argtypes, cdll.nft_ctx_get_error_buffer.restype = [ptr], text
    cdll.nft_run_cmd_from_buffer.argtypes, cdll.nft_run_cmd_from_buffer.restype = [ptr, text], ctypes.c_int


def load(sonames: tuple[str, ...] = SONAMES, find: Callable[[str], str | None] = ctypes.util.find_library) -> Library | None:
    """libnftables, or None when this host lacks it (the `nft` command is then run instead)."""
    candidates = [*sonames, *[found for found in [find("nftables")] if found is not None]]
    for name in candidates:
        try:
            cdll = ctypes.CDLL(name)
            _prototypes(cdll)
        except (OSError, AttributeError):  # missing, or too old to have a function drills calls
            continue
        return Library(cdll)
    return None


@dataclass
class Context:
    """One libnftables context bound to one node's network namespace."""

    library: Library
    node: str
    handle: int | None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, library: Library, node: str, namespace: str) -> Context:
        """A context whose netlink socket lives in `namespace` (created by a thread inside it)."""
        return cls(library, node, kernel.run_in_namespace(namespace, library.new))

    def run(self, commands: str, what: str) -> str:
        """Run nft commands (one atomic batch when they change the ruleset); nft's output
        (JSON for a listing). BackendError with nft's first error lines when it refuses."""
        lib = self.library.cdll
        with self.lock:
            if self.handle is None:
                raise BackendError(f"{what}: node {self.node}'s libnftables context is closed")
            status = lib.nft_run_cmd_from_buffer(self.handle, commands.encode())
            out: bytes | None = lib.nft_ctx_get_output_buffer(self.handle)
            err: bytes | None = lib.nft_ctx_get_error_buffer(self.handle)
        if status != 0:
            lines = (err or b"").decode(errors="replace").strip().splitlines()
            said = " ".join(line.strip() for line in lines[:ERROR_LINES_MAX]) or f"status {status}"
            raise BackendError(f"{what}: nftables in node {self.node} failed: {said}")
        return (out or b"").decode(errors="replace")

    def close(self) -> None:
        """Free the context and its socket (idempotent)."""
        with self.lock:
            if self.handle is not None:
                self.library.cdll.nft_ctx_free(self.handle)
                self.handle = None
