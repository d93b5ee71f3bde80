"""The control page's server: a Starlette app on the exercise's control, served by uvicorn in its
own thread with its own event loop (starlette and uvicorn appear nowhere else in drills).

The drill's clock thread is never waited on here: every call that may block (a command, which
the control runs on the clock's thread; `wait_change`) runs in a small thread pool, with a
timeout. Every request carries the token (query `?token=`, or the `X-Drills-Token` header on
POSTs), compared in constant time; bodies are at most 8 KiB; at most 8 live event streams.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from drills.control.commands import MAX_REQUEST_BYTES, Control, Refused, answer_json, execute, parse_request
from drills.errors import BadInput, EnvironmentProblem

TOKEN_HEADER = "x-drills-token"
MAX_EVENT_STREAMS = 8
WAIT_S = 1.0  # one wait_change at most: how soon a stream notices the server closing
KEEPALIVE_S = 15.0  # a comment line this often keeps proxies and the browser from dropping a quiet stream
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
SOURCE = "page"
# The page is one self-contained document: its own inline script and style, nothing fetched but
# its own event stream and commands; it is never framed, and the token never leaves in a Referer.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def new_token() -> str:
    return secrets.token_urlsafe(24)


def _page() -> bytes:
    return resources.files("drills.control").joinpath("page.html").read_bytes()


class ControlApp:
    """The ASGI app: `/` the page, `/events` the state as Server-Sent Events, `/state` the state
    once, `POST /command` a command ({"command": "hold"} and so on, as on the control socket)."""

    def __init__(self, control: Control, token: str) -> None:
        self.control = control
        self.token = token
        self.closing = threading.Event()  # set by WebServer.stop: every stream ends
        self._pool = ThreadPoolExecutor(max_workers=MAX_EVENT_STREAMS + 4, thread_name_prefix="control-web")
        self._streams = threading.BoundedSemaphore(MAX_EVENT_STREAMS)
        self.app = Starlette(
            routes=[
                Route("/", self.page, methods=["GET"]),
                Route("/events", self.events, methods=["GET"]),
                Route("/state", self.state, methods=["GET"]),
                Route("/command", self.command, methods=["POST"]),
            ]
        )

    def shutdown(self) -> None:
        self.closing.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _allowed(self, request: Request, header_ok: bool) -> bool:
        given = request.query_params.get("token")
        if given is None and header_ok:
            given = request.headers.get(TOKEN_HEADER)
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    @staticmethod
    def _secured(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        return response

    def _forbidden(self) -> Response:
        return self._secured(PlainTextResponse("forbidden: the URL's token is missing or wrong\n", status_code=403))

    async def _blocking(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def page(self, request: Request) -> Response:
        if not self._allowed(request, header_ok=False):
            return self._forbidden()
        return self._secured(Response(_page(), media_type="text/html; charset=utf-8"))

    async def state(self, request: Request) -> Response:
        if not self._allowed(request, header_ok=True):
            return self._forbidden()
        return self._secured(JSONResponse(await self._blocking(self.control.state)))

    async def command(self, request: Request) -> Response:
        if not self._allowed(request, header_ok=True):
            return self._forbidden()
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        parsed = parse_request(body)
        if isinstance(parsed, Refused):
            return self._secured(JSONResponse(answer_json(parsed), status_code=400))
        return self._secured(JSONResponse(await self._blocking(execute, self.control, parsed, SOURCE)))

    async def _body(self, request: Request) -> bytes | Response:
        """The body, read no further than the limit (a lying or absent Content-Length included)."""
        too_large = self._secured(
            JSONResponse(answer_json(Refused(f"request too large: at most {MAX_REQUEST_BYTES} bytes")), status_code=413)
        )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
            return too_large
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_REQUEST_BYTES:
                return too_large
        return body

    async def events(self, request: Request) -> Response:
        if not self._allowed(request, header_ok=False):
            return self._forbidden()
        if not self._streams.acquire(blocking=False):
            return self._secured(PlainTextResponse(f"busy: at most {MAX_EVENT_STREAMS} pages at once\n", status_code=503))
        response = StreamingResponse(self._stream(), media_type="text/event-stream")
        response.headers["X-Accel-Buffering"] = "no"
        return self._secured(response)

    async def _stream(self) -> AsyncIterator[str]:
        """The state on every change (the first at once), a keep-alive comment when quiet."""
        try:
            version, quiet_since = -1, time.monotonic()
            while not self.closing.is_set():
                current = await self._blocking(self.control.wait_change, version, WAIT_S)
                if current != version:
                    state = await self._blocking(self.control.state)
                    version = int(state.get("version", current))
                    quiet_since = time.monotonic()
                    yield f"data: {json.dumps(state, separators=(',', ':'))}\n\n"
                elif time.monotonic() - quiet_since >= KEEPALIVE_S:
                    quiet_since = time.monotonic()
                    yield ": keep-alive\n\n"
        finally:
            self._streams.release()


def _listen(bind: str, port: int) -> socket.socket:
    """The listening socket, bound here (not in uvicorn's thread) so that a taken port or a bad
    address is refused at once, as bad input."""
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(bind, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise BadInput(f"--control-bind {bind}: not an address of this host ({exc})") from exc
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(64)
    except OSError as exc:
        sock.close()
        raise BadInput(f"the control page cannot listen on {bind} port {port}: {exc.strerror or exc}") from exc
    return sock


class WebServer:
    """The page's server in its own thread: `start()` returns once it listens; `stop()` ends the
    streams, then the server, and waits for its thread (bounded)."""

    def __init__(self, control: Control, bind: str = "127.0.0.1", port: int = 0, token: str | None = None) -> None:
        self.token = token or new_token()
        self.app = ControlApp(control, self.token)
        self._sock = _listen(bind, port)
        host, self.port = self._sock.getsockname()[:2]
        self.host = f"[{host}]" if ":" in host else host
        config = uvicorn.Config(
            self.app.app, log_level="warning", access_log=False, lifespan="off", http="h11",
            timeout_graceful_shutdown=int(STOP_TIMEOUT_S), server_header=False,
        )  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="control-page", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/?token={self.token}"

    def _serve(self) -> None:
        # uvicorn installs signal handlers only on the main thread: this one leaves Ctrl-C to the drill.
        self._server.run(sockets=[self._sock])

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise EnvironmentProblem("the control page's server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.app.closing.set()
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=STOP_TIMEOUT_S + WAIT_S + 1)
        self.app.shutdown()
        self._sock.close()
