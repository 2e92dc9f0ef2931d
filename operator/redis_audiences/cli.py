"""The ``redis-audiences`` command line.

``sync`` runs activations once from the same manifests ``kubectl apply``
takes, without Kubernetes. Exit codes: 0 when every run succeeded, 1 when a
run failed or was blocked, 2 on invalid input. User mistakes print one line
on stderr, never a traceback; URLs and secrets are never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from redis_audiences import __version__
from redis_audiences.membership import MembershipError, RunReport
from redis_audiences.membership.runs import ProgressSink
from redis_audiences.resources import (
    ManifestError,
    ManifestSet,
    RedisAudienceActivation,
    load_manifests,
)
from redis_audiences.resources.crds import crds_yaml
from redis_audiences.syncing import Overrides, execute, last_run_fields, prepare

EXIT_OK, EXIT_RUN_FAILED, EXIT_INVALID = 0, 1, 2


class UsageError(Exception):
    """The command line or the manifests are invalid (exit code 2)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``redis-audiences`` command."""
    args = _parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        code: int = args.handler(args)
    except (UsageError, ManifestError) as error:
        print(f"redis-audiences: {error}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("redis-audiences: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # NB: the reader went away (`| head`); say nothing more to it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_RUN_FAILED
    return code


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM (what Kubernetes sends) stops a run like Ctrl-C: cleaned up."""
    raise KeyboardInterrupt


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="redis-audiences", description="Keep audience membership in Redis Sets."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sync = commands.add_parser("sync", help="run activations once from manifest files")
    sync.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        required=True,
        type=Path,
        metavar="FILE",
        help="manifest file (repeatable)",
    )
    sync.add_argument(
        "--activation", metavar="NAME", help="run only this activation (NAME or NAMESPACE/NAME)"
    )
    sync.add_argument(
        "--redis-url",
        metavar="URL",
        type=_redis_url,
        help="use this Redis instead of the destination's (a Cluster stays a Cluster)",
    )
    sync.add_argument("--mode", choices=["full", "delta"], help="override syncMode")
    sync.add_argument(
        "--dry-run", action="store_true", default=None, help="plan and report, write nothing"
    )
    sync.add_argument("--output", choices=["text", "json"], default="text")
    sync.set_defaults(handler=_sync)
    run = commands.add_parser("run", help="run the Kubernetes operator")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        "-n",
        dest="namespaces",
        action="append",
        type=_namespace,
        default=[],
        metavar="NS",
        help="watch this namespace (repeatable)",
    )
    scope.add_argument(
        "--all-namespaces", "-A", action="store_true", help="watch every namespace (the default)"
    )
    run.add_argument(
        "--liveness",
        type=_liveness_url,
        metavar="URL",
        help="serve Kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz",
    )
    run.add_argument(
        "--metrics-port", type=_port, metavar="N", help="serve Prometheus metrics on this port"
    )
    run.add_argument(
        "--log-format",
        choices=["full", "plain", "json"],
        default="full",
        help="operator log lines: full (with time and level), plain or json",
    )
    run.add_argument(
        "--peering",
        metavar="NAME",
        help="coordinate replicas through the Kopf peering object NAME (one is active)",
    )
    run.add_argument("--priority", type=int, metavar="N", help="peering priority (default: random)")
    run.set_defaults(handler=_run)
    crds = commands.add_parser("crds", help="print the CRD manifests generated from the models")
    crds.set_defaults(handler=_crds)
    return parser


def _run(args: argparse.Namespace) -> int:
    # NB: imported here: Kopf is slow to import and `sync` does not need it.
    from redis_audiences.controller import running  # noqa: PLC0415

    running.configure_logging(args.log_format)
    try:
        running.run_operator(
            namespaces=args.namespaces,
            liveness=args.liveness,
            metrics_port=args.metrics_port,
            peering=args.peering,
            priority=args.priority,
        )
    except running.StartupError as error:
        raise UsageError(str(error)) from None
    return EXIT_OK


def _crds(args: argparse.Namespace) -> int:
    print(crds_yaml(), end="")
    return EXIT_OK


def _namespace(value: str) -> str:
    """A Kubernetes namespace name (an RFC 1123 label)."""
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a namespace name (lower-case letters, digits and '-')"
        )
    return value


def _port(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port (1 to 65535)")
    return int(value)


def _liveness_url(value: str) -> str:
    """An http:// URL with a port, as Kopf's liveness endpoint needs."""
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "http" or not parts.hostname or port is None:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a liveness URL; use http://HOST:PORT/PATH, "
            "e.g. http://0.0.0.0:8080/healthz"
        )
    return value


def _redis_url(value: str) -> str:
    """Accept a redis:// or rediss:// URL; the message never echoes it."""
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018  (parsing the port is the check)
    except ValueError:
        raise argparse.ArgumentTypeError("the URL's port is not a number") from None
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise argparse.ArgumentTypeError("use redis://HOST:PORT/DB or rediss://HOST:PORT/DB")
    return value


def _sync(args: argparse.Namespace) -> int:
    manifests = load_manifests(args.files)
    chosen = _chosen_activations(manifests, args.activation)
    overrides = Overrides(
        redis_url=args.redis_url,
        mode={"full": "Full", "delta": "Delta", None: None}[args.mode],
        dry_run=args.dry_run,
    )
    prepared = []
    for activation in chosen:
        try:
            run = prepare(activation, manifests.destination_for(activation), manifests, overrides)
        except (ManifestError, MembershipError) as error:
            name = activation.qualified_name
            raise UsageError(f"RedisAudienceActivation {name}: {error}") from None
        prepared.append((activation, run))

    show_progress = args.output == "text" and sys.stderr.isatty()
    reports = []
    for activation, run in prepared:
        with _progress(activation, enabled=show_progress) as sink:
            report = execute(run, progress=sink)
        reports.append((activation, report))
        if args.output == "text":
            print(_text(activation, report), flush=True)
    if args.output == "json":
        print(json.dumps([_json(a, r) for a, r in reports], indent=2))
    failed = any(report.outcome != "Succeeded" for _, report in reports)
    return EXIT_RUN_FAILED if failed else EXIT_OK


def _chosen_activations(
    manifests: ManifestSet, wanted: str | None
) -> list[RedisAudienceActivation]:
    activations = manifests.activations
    if wanted:
        activations = [a for a in activations if wanted in (a.meta.name, a.qualified_name)]
        if not activations:
            names = ", ".join(a.qualified_name for a in manifests.activations) or "none"
            raise UsageError(
                f"no RedisAudienceActivation {wanted!r} in the manifests (found: {names})."
            )
    if not activations:
        raise UsageError("the manifests hold no RedisAudienceActivation.")
    return activations


@contextmanager
def _progress(activation: RedisAudienceActivation, *, enabled: bool) -> Iterator[ProgressSink]:
    if not enabled:
        yield lambda phase, count: None
        return
    console = Console(stderr=True)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        totals: dict[str, int] = {}
        task = bar.add_task(activation.spec.audience_name)

        def sink(phase: str, count: int) -> None:
            totals[phase] = totals.get(phase, 0) + count
            done = ", ".join(f"{name} {value:,}" for name, value in totals.items())
            bar.update(task, description=f"{activation.spec.audience_name}: {done}")

        yield sink


def _text(activation: RedisAudienceActivation, report: RunReport) -> str:
    dry = " (dry run)" if report.dry_run else ""
    members = "" if report.members is None else f", members {report.members:,}"
    lines = [
        f"{activation.qualified_name} -> audience {activation.spec.audience_name!r}: "
        f"{report.outcome}{dry}, {report.mode} run {report.id} in {report.duration_seconds:.2f}s",
        f"  rows {report.source_rows:,}, added {report.added:,}, removed {report.removed:,}, "
        f"unchanged {report.unchanged:,}, skipped {report.skipped:,}{members}",
    ]
    if report.message:
        lines.append(f"  {report.message}")
    if report.wrong_type_sample:
        lines.append(f"  keys of another type: {', '.join(report.wrong_type_sample)}")
    return "\n".join(lines)


def _json(activation: RedisAudienceActivation, report: RunReport) -> dict[str, Any]:
    return {
        "activation": activation.qualified_name,
        "audience": activation.spec.audience_name,
        **last_run_fields(report),
        "members": report.members,
        "wrongTypeSample": report.wrong_type_sample,
    }


if __name__ == "__main__":
    sys.exit(main())
