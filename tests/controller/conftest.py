"""The real Kopf operator against KMock, an emulated Kubernetes API.

KMock stores objects and streams watch events, but it is not an API server.
``RealisticEmulator`` adds, per request, what the operator relies on:

* ``uid``, ``creationTimestamp``, ``generation`` 1 and a ``resourceVersion``
  on create, and a name for ``generateName`` (Kopf posts Events with it);
* ``generation`` +1 when a write to the object (not its status) changes
  ``spec``, and a new ``resourceVersion`` on every write;
* status-subresource semantics for the project's kinds: a PATCH to
  ``.../status`` changes only ``status``, and a PATCH to the object ignores
  ``status`` (Kopf's peering kinds have no status subresource);
* a failed JSON-patch ``test`` answers 422 (KMock answers 500, which Kopf
  retries instead of re-reading the object);
* Kopf's ``ClusterKopfPeering`` kind, which the chart's CRDs would install.

KMock and the operator each run in a thread with their own event loop: the
operator cancels tasks it did not start, so it must not share pytest's loop.
Objects are created only after the operator's watch is open (KMock replays
objects on connect without resource versions; see shared notes).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonpatch
import kopf
import pytest
from kmock._internal import apps, enums, k8s, rendering

from redis_audiences.controller.running import run_operator
from redis_audiences.resources.crds import KINDS
from redis_audiences.resources.models import GROUP, VERSION

_VERSIONS = itertools.count(1)


class RealisticEmulator(k8s.KubernetesEmulator):  # type: ignore[misc]
    """KMock plus the API-server behaviour listed in the module docstring."""

    async def _handle(self, request: rendering.Request) -> Any:
        data = request.data
        if isinstance(data, dict) and request.resource is not None:
            if request.action == enums.action.CREATE:
                self._on_create(data)
            elif request.action == enums.action.UPDATE:
                self._on_update(request, data)
        try:
            return await super()._handle(request)
        except jsonpatch.JsonPatchTestFailed as error:
            raise k8s.KubernetesError(status=422, reason="Invalid", message=str(error)) from None

    @staticmethod
    def _on_create(data: dict[str, Any]) -> None:
        meta = data.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:6]
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        meta["generation"] = 1
        meta["resourceVersion"] = str(next(_VERSIONS))

    def _on_update(self, request: rendering.Request, data: dict[str, Any]) -> None:
        key = (request.resource, request.namespace, request.name)
        current = self.objects[key].raw if key in self.objects else {}
        if request.subresource == "status":
            for field in [f for f in data if f != "status"]:
                del data[field]
        elif request.resource.group == GROUP:
            data.pop("status", None)
        meta = data.setdefault("metadata", {})
        if "spec" in data and _merged(current.get("spec"), data["spec"]) != current.get("spec"):
            meta["generation"] = current.get("metadata", {}).get("generation", 1) + 1
        meta["resourceVersion"] = str(next(_VERSIONS))


def _merged(base: Any, patch: Any) -> Any:
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return patch
    result = dict(base)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merged(base.get(key), value)
    return result


class Cluster:
    """An emulated API server in a thread, with small synchronous helpers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.url = ""
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> None:
        self.emulator = RealisticEmulator()
        self.server = apps.Server(self.emulator)
        await self.emulator.__aenter__()
        await self.server.__aenter__()
        self.emulator.resources.load_bundled()
        for kind in KINDS:
            self.emulator.resources[f"{GROUP}/{VERSION}/{kind.plural}"] = {
                "kind": kind.kind, "namespaced": True, "subresources": {"status"},
                "shortnames": {kind.short_name}, "categories": {"audiences"},
                "verbs": {"get", "list", "watch", "create", "patch", "update", "delete"},
            }  # fmt: skip
        self.emulator.resources["kopf.dev/v1/clusterkopfpeerings"] = {
            "kind": "ClusterKopfPeering", "namespaced": False,
            "verbs": {"get", "list", "watch", "create", "patch", "update", "delete"},
        }  # fmt: skip
        self.url = str(self.server.url).rstrip("/")

    def stop(self) -> None:
        async def _stop() -> None:
            await self.server.__aexit__(None, None, None)
            await self.emulator.__aexit__(None, None, None)

        asyncio.run_coroutine_threadsafe(_stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        content = "application/merge-patch+json" if method == "PATCH" else "application/json"
        call = urllib.request.Request(self.url + path, data=data, method=method,
                                      headers={"Content-Type": content})  # fmt: skip
        with urllib.request.urlopen(call, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def create(self, obj: dict[str, Any]) -> Any:
        return self.request("POST", _collection(obj), obj)

    def patch(self, obj: dict[str, Any], changes: dict[str, Any], *, status: bool = False) -> Any:
        path = f"{_collection(obj)}/{obj['metadata']['name']}" + ("/status" if status else "")
        return self.request("PATCH", path, changes)

    def get(self, obj: dict[str, Any]) -> Any:
        return self.request("GET", f"{_collection(obj)}/{obj['metadata']['name']}")

    def events(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.request("GET", "/api/v1/events")["items"]
        return items

    def watched(self, plural: str) -> bool:
        return any(
            r.action == enums.action.WATCH and r.resource is not None
            and r.resource.plural == plural for r in list(self.emulator)
        )  # fmt: skip

    def wait(self, obj: dict[str, Any], check: Callable[[Any], bool], timeout: float = 15) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            current = self.get(obj)
            if check(current):
                return current
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; last state: {current.get('status')}")
            time.sleep(0.05)


def _collection(obj: dict[str, Any]) -> str:
    namespace = obj["metadata"].get("namespace", "default")
    version = obj["apiVersion"]
    plural = {"Secret": "secrets", "ConfigMap": "configmaps"}.get(obj["kind"])
    if plural:
        return f"/api/{version}/namespaces/{namespace}/{plural}"
    kind = next(k for k in KINDS if k.kind == obj["kind"])
    return f"/apis/{version}/namespaces/{namespace}/{kind.plural}"


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    emulated = Cluster()
    yield emulated
    emulated.stop()


@pytest.fixture
def operator(cluster: Cluster) -> Iterator[Cluster]:
    """The operator running against ``cluster``, watching every namespace."""
    stop, ready = threading.Event(), threading.Event()

    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=cluster.url, priority=100)

    thread = threading.Thread(target=lambda: run_operator(
        namespaces=[], liveness=None, metrics_port=None, login=login,
        stop_flag=stop, ready_flag=ready,
    ), daemon=True)  # fmt: skip
    thread.start()
    deadline = time.monotonic() + 15
    while not all(cluster.watched(p) for p in ("redisaudienceactivations", "redisdestinations")):
        if time.monotonic() > deadline:
            raise RuntimeError("the operator did not start watching")
        time.sleep(0.02)
    yield cluster
    stop.set()
    thread.join(20)


class OperatorProcess:
    """``redis-audiences run`` as a subprocess, logged in by a kubeconfig."""

    def __init__(self, cluster: Cluster, directory: Path, *args: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        kubeconfig = directory / "kubeconfig"
        kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
            "clusters": [{"name": "kmock", "cluster": {"server": cluster.url}}],
            "users": [{"name": "tester", "user": {}}],
            "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "tester"}}],
        }))  # fmt: skip
        self.log = directory / "operator.log"
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        command = [sys.executable, "-m", "redis_audiences.cli", "run", *args]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=log)

    def stop(self) -> None:
        """Stop as Kubernetes does (SIGTERM), and wait for a clean exit."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
