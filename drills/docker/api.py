"""Every call to the Docker SDK (docker-py), in one place.

Docker's exceptions are translated into drills' error tree here and nowhere else: an engine that
is not installed or not running is an `EnvironmentProblem` (exit 3, with what to do), a failed
call on a container a `BackendError` naming it. The SDK is the optional extra `drills[docker]`,
imported lazily so that namespace-only installs never need it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drills.errors import BackendError, EnvironmentProblem

RUN_LABEL = "drills.run"  # every container a run creates carries its run id
NODE_LABEL = "drills.node"  # and the name of the node it is
IMAGE_HASH_LABEL = "drills.image.hash"  # images: the hash of the definition they were built from
CLAB_LAB_LABEL = "containerlab"  # containerlab's own labels, read when attaching to a lab
CLAB_NODE_LABEL = "clab-node-name"
EXEC_START_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ContainerSpec:
    """What a container is created from (the docker backend builds it from a resolved Node)."""

    name: str
    image: str
    command: tuple[str, ...] | None
    environment: tuple[tuple[str, str], ...]
    binds: tuple[str, ...]  # "host:container[:ro]"
    cap_add: tuple[str, ...]
    privileged: bool
    hostname: str
    labels: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ContainerState:
    """What the engine says about one container."""

    id: str
    name: str
    status: str  # created, running, paused, exited, ...
    pid: int  # 0 unless running or paused
    labels: dict[str, str]

    @property
    def running(self) -> bool:
        return self.status == "running"


@contextmanager
def _errors(what: str) -> Iterator[None]:
    import docker.errors as derr
    import requests.exceptions as rex

    try:
        yield
    except derr.ImageNotFound as exc:
        raise BackendError(
            f"{what}: image not found ({exc.explanation}); build it offline with `drill image build` "
            "(this machine has no image registry)"
        ) from exc
    except derr.NotFound as exc:
        raise BackendError(f"{what}: not found ({exc.explanation})") from exc
    except derr.APIError as exc:
        raise BackendError(f"{what}: {exc.explanation or exc}") from exc
    except (derr.DockerException, rex.ConnectionError) as exc:
        raise EnvironmentProblem(f"{what}: cannot reach the Docker engine ({exc}); {START_HINT}") from exc


START_HINT = "install it (`apt-get install docker.io`) and start it (`dockerd &`, or `./dev docker-setup`)"


class Docker:
    """A connection to the local Docker engine."""

    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def connect(cls, timeout_s: float = 60.0) -> Docker:
        try:
            import docker
        except ImportError:
            raise EnvironmentProblem(
                "the docker backend needs the Python package `docker`: pip install 'drills[docker]'"
            ) from None
        with _errors("connect to Docker"):
            # Parallel deploys use one connection per worker thread: size the pool for them.
            client = docker.DockerClient(base_url="unix:///var/run/docker.sock", timeout=int(timeout_s), max_pool_size=64)
            client.ping()
        return cls(client)

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------------ images

    def image_exists(self, ref: str) -> bool:
        import docker.errors as derr

        with _errors(f"inspect image {ref}"):
            try:
                self._client.images.get(ref)
            except derr.ImageNotFound:
                return False
        return True

    def import_image(self, tarball: Path, repository: str, tag: str, changes: list[str]) -> None:
        """`docker import`: an image from a root file system tarball (no registry involved)."""
        with _errors(f"import image {repository}:{tag}"):
            self._client.api.import_image_from_file(str(tarball), repository=repository, tag=tag, changes=changes)
        if not self.image_exists(f"{repository}:{tag}"):
            raise BackendError(f"import image {repository}:{tag}: Docker accepted the tarball but shows no image")

    def tag_image(self, ref: str, repository: str, tag: str) -> None:
        with _errors(f"tag image {ref}"):
            self._client.images.get(ref).tag(repository, tag)

    # ------------------------------------------------------------------ containers

    def create_and_start(self, spec: ContainerSpec) -> ContainerState:
        """Create a container with no network of Docker's (`network_mode=none`: only `lo`; the
        backend wires it with veth pairs) and start it."""
        with _errors(f"create container {spec.name}"):
            container = self._client.containers.create(
                spec.image,
                command=list(spec.command) if spec.command is not None else None,
                name=spec.name,
                hostname=spec.hostname,
                environment=dict(spec.environment),
                volumes=list(spec.binds),
                cap_add=list(spec.cap_add),
                privileged=spec.privileged,
                network_mode="none",
                labels=dict(spec.labels),
                detach=True,
                stop_signal="SIGKILL",
            )
        with _errors(f"start container {spec.name}"):
            container.start()
            container.reload()
        return _state(container)

    def state(self, name: str) -> ContainerState | None:
        """The container's state, or None when it does not exist."""
        import docker.errors as derr

        with _errors(f"inspect container {name}"):
            try:
                container = self._client.containers.get(name)
            except derr.NotFound:
                return None
        return _state(container)

    def find(self, labels: dict[str, str | None]) -> list[ContainerState]:
        """Containers carrying every label (a value of None: the label with any value)."""
        wanted = [key if value is None else f"{key}={value}" for key, value in labels.items()]
        with _errors(f"list containers labelled {', '.join(wanted)}"):
            found = self._client.containers.list(all=True, filters={"label": wanted})
        return [_state(c) for c in found]

    def remove(self, name: str) -> bool:
        """Remove a container (killed first if it runs). Idempotent: True when one was removed."""
        import docker.errors as derr

        with _errors(f"remove container {name}"):
            try:
                self._client.api.remove_container(name, force=True, v=True)
            except derr.NotFound:
                return False
        return True

    def kill(self, name: str) -> None:
        with _errors(f"kill container {name}"):
            self._client.api.kill(name)

    def start(self, name: str) -> None:
        with _errors(f"start container {name}"):
            self._client.api.start(name)

    def pause(self, name: str) -> None:
        with _errors(f"pause container {name}"):
            self._client.api.pause(name)

    def unpause(self, name: str) -> None:
        with _errors(f"unpause container {name}"):
            self._client.api.unpause(name)

    def exec(
        self, name: str, argv: list[str], *, detach: bool = False, environment: dict[str, str] | None = None
    ) -> tuple[int, str, int]:
        """Run `argv` inside the container; (exit code, output, pid). With `detach`, returns once
        the process runs, with exit code -1 and its process id on the host (for a service: a
        `docker exec` process leads its own session and process group)."""
        with _errors(f"exec in container {name}"):
            exec_id = self._client.api.exec_create(name, argv, stdout=True, stderr=True, environment=environment)["Id"]
            output = self._client.api.exec_start(exec_id, detach=detach)
            info = self._client.api.exec_inspect(exec_id)
            deadline = time.monotonic() + EXEC_START_TIMEOUT_S
            while detach and not info.get("Pid") and info.get("Running") is not False and time.monotonic() < deadline:
                time.sleep(0.01)
                info = self._client.api.exec_inspect(exec_id)
        text = "" if detach else (output or b"").decode(errors="replace")
        code = info.get("ExitCode")
        return (-1 if code is None or detach else int(code)), text, int(info.get("Pid") or 0)


def _state(container: Any) -> ContainerState:
    attrs = container.attrs
    state = attrs.get("State", {})
    return ContainerState(
        id=str(container.id),
        name=str(container.name),
        status=str(state.get("Status", container.status)),
        pid=int(state.get("Pid") or 0),
        labels=dict(attrs.get("Config", {}).get("Labels") or {}),
    )
