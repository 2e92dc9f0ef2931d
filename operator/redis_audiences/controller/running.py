"""Starting the operator: Kopf's settings and the metrics endpoint.

Kopf's bookkeeping (handler progress, the last handled spec) goes into
annotations under ``kopf.audiences.dev``, never into ``status``, which stays
the product's alone. Watch requests carry server and client timeouts, so a
watch connection that dies silently (a load balancer dropping it) is noticed
and re-opened.

Kopf's runtime scanning of namespaces and CRDs is off: the operator serves the
resources found at start-up, so it needs no RBAC on namespaces or CRDs. Two
replicas coordinate through Kopf peering (``--peering NAME``): each starts
with a random priority, so exactly one is active and the others stand by
until it leaves; without peering a replica runs standalone. Either way the
Redis lock keeps two runs of one audience apart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kopf
from prometheus_client import start_http_server

from redis_audiences.controller import activations, destinations
from redis_audiences.controller.indexes import REGISTRY
from redis_audiences.controller.metrics import REGISTRY as METRICS

BOOKKEEPING_PREFIX = "kopf.audiences.dev"
HANDLERS = (activations, destinations)  # NB: importing them registers their handlers.
LoginFn = Callable[..., Any]
_LOGINS: set[LoginFn] = set()
WATCH_SERVER_TIMEOUT = 300
WATCH_CLIENT_TIMEOUT = 330
PRIORITY_RANGE = 2**31 - 1
HANDLER_THREADS = 64
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


def configure(settings: kopf.OperatorSettings) -> None:
    """Settings shared by production and the tests."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=BOOKKEEPING_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=BOOKKEEPING_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{BOOKKEEPING_PREFIX}/finalizer"
    settings.watching.server_timeout = WATCH_SERVER_TIMEOUT
    settings.watching.client_timeout = WATCH_CLIENT_TIMEOUT
    settings.watching.connect_timeout = 30
    settings.posting.level = logging.INFO
    settings.scanning.disabled = True
    # NB: each run holds a thread while its source is read; slow warehouse
    # queries must not starve timers, destination checks and deletions.
    settings.execution.max_workers = HANDLER_THREADS


class StartupError(Exception):
    """The operator cannot start as asked (a port in use, say)."""


def _check_credentials() -> None:
    """Fail at once, in one line, when there is nothing to log in with."""
    in_cluster = os.environ.get("KUBERNETES_SERVICE_HOST") and SERVICE_ACCOUNT_TOKEN.exists()
    configs = os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config"))
    if not in_cluster and not any(Path(c).is_file() for c in configs.split(os.pathsep) if c):
        raise StartupError(
            "no Kubernetes credentials: not in a cluster (no service account token) "
            f"and no kubeconfig at {configs!r}."
        )


def _check_port_free(liveness: str) -> None:
    """Refuse a liveness URL whose port is taken before Kopf fails on it."""
    parts = urlsplit(liveness)
    with socket.socket(socket.AF_INET6 if ":" in (parts.hostname or "") else socket.AF_INET) as s:
        try:
            s.bind((parts.hostname or "0.0.0.0", parts.port or 80))
        except OSError as error:
            raise StartupError(
                f"cannot serve liveness on port {parts.port}: {error.strerror}."
            ) from None


def _serve_metrics(port: int) -> None:
    try:
        start_http_server(port, registry=METRICS)
    except OSError as error:
        raise StartupError(f"cannot serve metrics on port {port}: {error.strerror}.") from None


def configure_logging(log_format: str) -> None:
    """Log to stderr at INFO, in Kopf's ``full``, ``plain`` or ``json`` form."""
    kopf.configure(log_format=kopf.LogFormat[log_format.upper()])


def run_operator(
    *,
    namespaces: Sequence[str],
    liveness: str | None,
    metrics_port: int | None,
    peering: str | None = None,
    priority: int | None = None,
    login: LoginFn | None = None,
    stop_flag: threading.Event | None = None,
    ready_flag: threading.Event | None = None,
) -> None:
    """Run the operator until stopped (namespaces empty: all namespaces).

    ``peering`` names the Kopf peering object shared by the replicas (None:
    standalone); ``priority`` defaults to a random one. ``login`` replaces the
    standard in-cluster and kubeconfig logins (tests point the operator at an
    emulated API server with it).
    """
    if login is None:
        _check_credentials()
    if liveness is not None:
        _check_port_free(liveness)
    if metrics_port is not None:
        _serve_metrics(metrics_port)
    for handler in (
        [login] if login else [kopf.login_with_service_account, kopf.login_with_kubeconfig]
    ):
        if handler not in _LOGINS:
            kopf.on.login(registry=REGISTRY)(handler)
            _LOGINS.add(handler)
    settings = kopf.OperatorSettings()
    configure(settings)
    options: dict[str, Any] = {"clusterwide": not namespaces, "namespaces": list(namespaces)}
    if peering:
        chosen = random.randint(1, PRIORITY_RANGE) if priority is None else priority
        options.update(peering_name=peering, priority=chosen)
    operator = kopf.operator(
        registry=REGISTRY,
        settings=settings,
        liveness_endpoint=liveness,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
        standalone=not peering,
        **options,
    )
    try:
        asyncio.run(operator)
    except kopf.LoginError as error:
        raise StartupError(f"cannot log in to Kubernetes: {error}") from None
