"""The Argo CD health checks in ``argocd/``, run in Lua as Argo CD runs them.

Argo CD decides whether an Application is Healthy from a Lua script per kind,
so a wrong script shows a broken sync as green (or a good one as red) to
every team that deploys audiences with Argo CD. No Argo CD runs here, so the
scripts run in lupa's Lua 5.1 (Argo CD embeds gopher-lua, a Lua 5.1), inside
a sandbox as narrow as Argo CD's for scripts from argocd-cm: the base and
table libraries only. The object reaches the script as Argo CD hands it over:
JSON objects and arrays as Lua tables, nulls as absent keys.

The fixtures are hand-written statuses for each rule and edge case, plus
statuses built by the operator's own ``statuses`` functions, so that a change
to what the operator writes shows up here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from lupa import lua51

from redis_audiences.controller import statuses
from redis_audiences.membership import RunReport

ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "argocd"
GROUP = "audiences.dev"
KINDS = ("RedisAudienceActivation", "RedisDestination")
ARGO_CD_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
SYNCED_AT = "2026-12-03T10:00:02Z"

# What Argo CD's sandbox lacks: no string, math, io, os or debug library, no
# modules. The string metatable goes too, so ("x"):upper() fails as well.
SANDBOX = """
getmetatable("").__index = nil
for _, name in ipairs({"string", "math", "io", "os", "debug", "coroutine", "package",
                       "require", "module", "dofile", "loadfile", "python"}) do
  _G[name] = nil
end
"""

Object = dict[str, Any]


def script(kind: str) -> str:
    return (ARGOCD / "health" / f"{GROUP}_{kind}.lua").read_text(encoding="utf-8")


def to_lua(lua: Any, value: Any) -> Any:
    """Convert JSON-like Python values into Lua tables, recursively."""
    if isinstance(value, dict):
        table = lua.table()
        for key, item in value.items():
            table[key] = to_lua(lua, item)  # NB: None sets nil: the key is absent.
        return table
    if isinstance(value, list):
        return lua.table(*(to_lua(lua, item) for item in value))
    return value


def run_lua(source: str, obj: Object) -> tuple[str, str]:
    """Run ``source`` in the sandbox with ``obj``; return status and message."""
    lua = lua51.LuaRuntime(register_eval=False)
    lua.execute(SANDBOX)
    lua.globals().obj = to_lua(lua, obj)

    returned = lua.execute(source)

    assert lua51.lua_type(returned) == "table", f"the script returned {returned!r}"
    return returned["status"], returned["message"]


def health(obj: Object) -> tuple[str, str]:
    status, message = run_lua(script(obj["kind"]), obj)
    assert status in ARGO_CD_STATUSES
    assert isinstance(message, str) and message
    return status, message


def activation(
    generation: int | str | None = 1, status: Object | None = None, **spec: Any
) -> Object:
    metadata: Object = {"name": "vip", "namespace": "marketing", "generation": generation}
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "RedisAudienceActivation",
        "metadata": metadata,
        "spec": {
            "destinationRef": {"name": "profiles-redis"},
            "audienceName": "vip_customers",
            "source": {"inline": {"keys": ["customer:1"]}},
            **spec,
        },
        "status": status,
    }


def destination(generation: int = 1, status: Object | None = None) -> Object:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "RedisDestination",
        "metadata": {"name": "profiles-redis", "namespace": "marketing", "generation": generation},
        "spec": {"url": "redis://redis.marketing.svc:6379"},
        "status": status,
    }


def condition(
    kind: str, status: str, reason: str, message: str, generation: int | None = 1
) -> Object:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": SYNCED_AT,
        "observedGeneration": generation,
    }


def ran(
    phase: str, ready: str, reason: str, message: str, generation: int = 1, **status: Any
) -> Object:
    """An activation status after a run of ``generation``."""
    conditions = [
        condition("Ready", ready, reason, message, generation),
        condition("Reconciling", "False", "Idle", "No run in progress.", generation),
        condition(
            "Stalled", "True" if phase == "Blocked" else "False", reason, message, generation
        ),
    ]
    return {
        "observedGeneration": generation,
        "phase": phase,
        "lastSyncTime": SYNCED_AT,
        "conditions": conditions,
        **status,
    }


SYNCED = ran("Synced", "True", "Synced", "Full run r1 succeeded.", members=93)
UNREACHABLE = "Redis unreachable: Error 111 connecting to 10.0.0.7:6379. Connection refused."
FAILED = ran(
    "Failed", "False", "SyncFailed", UNREACHABLE,
    lastRun={"outcome": "Failed", "message": UNREACHABLE, "dryRun": False},
)  # fmt: skip
GUARD = "the run would remove 3 of 4 members (75.0%), above safety.maxRemovalPercent 50."
NOT_READY = "RedisDestination 'profiles-redis' is missing or not ready; the sync waits for it."
RUNNING = condition("Reconciling", "True", "Manual", "A Manual run is in progress.")


@pytest.mark.parametrize(("obj", "expected", "message"), [
    pytest.param(activation(), "Progressing", "Waiting for the operator to run",
                 id="no-status"),
    pytest.param(activation(status={}), "Progressing", "Waiting for a sync run to start",
                 id="empty-status"),
    pytest.param(activation(status={"phase": "Pending", "conditions": []}), "Progressing",
                 "Waiting for a sync run to start", id="empty-conditions"),
    pytest.param(activation(status=SYNCED), "Healthy",
                 f"93 members, last sync {SYNCED_AT}", id="synced"),
    pytest.param(activation(status={**SYNCED, "members": 0}), "Healthy",
                 f"0 members, last sync {SYNCED_AT}", id="synced-empty-audience"),
    pytest.param(activation(generation=None, status=SYNCED), "Healthy", "93 members",
                 id="no-generation-in-metadata"),
    pytest.param(activation(generation=2, status=SYNCED), "Progressing",
                 "observe generation 2 (last observed 1)", id="stale-generation"),
    pytest.param(activation(generation=2, status=FAILED), "Progressing",
                 "observe generation 2 (last observed 1)", id="stale-generation-after-failure"),
    pytest.param(activation(generation="2", status=SYNCED), "Progressing",
                 "observe generation 2", id="generation-as-a-string"),
    pytest.param(
        activation(generation=2, status={**SYNCED, "conditions": [
            {**SYNCED["conditions"][0], "observedGeneration": None}]}),
        "Progressing", "last observed 1", id="stale-status-generation-without-condition-one"),
    pytest.param(
        activation(generation=2, status={**FAILED, "phase": "Pending", "conditions": [
            condition("Ready", "False", "DestinationNotReady", NOT_READY, generation=2)]}),
        "Degraded", f"DestinationNotReady: {NOT_READY}", id="destination-not-ready"),
    pytest.param(activation(status={"phase": "Pending"}), "Progressing",
                 "Waiting for a sync run to start", id="pending-first-run"),
    pytest.param(activation(status={**SYNCED, "phase": "Syncing", "conditions": [
        *SYNCED["conditions"][:1], RUNNING]}), "Progressing", "A Manual run is in progress.",
                 id="syncing"),
    pytest.param(activation(status={**SYNCED, "conditions": [RUNNING]}), "Progressing",
                 "A Manual run is in progress.", id="reconciling-while-synced"),
    pytest.param(activation(status={**SYNCED, "phase": "Syncing"}), "Progressing",
                 "A sync run is in progress.", id="syncing-announced-only-in-the-phase"),
    pytest.param(activation(status=FAILED), "Degraded", f"SyncFailed: {UNREACHABLE}",
                 id="failed"),
    pytest.param(activation(status=ran("Blocked", "False", "SafetyGuard", GUARD)), "Degraded",
                 f"SafetyGuard: {GUARD}", id="blocked"),
    pytest.param(activation(status=ran("Failed", "False", "InvalidSpec", "spec.x is bad.")),
                 "Degraded", "InvalidSpec: spec.x is bad.", id="invalid-spec"),
    pytest.param(activation(status=ran("Failed", "False", "AudienceConflict", "claimed.")),
                 "Degraded", "AudienceConflict: claimed.", id="audience-conflict"),
    pytest.param(activation(status={**SYNCED, "conditions": [
        condition("Ready", "Unknown", "Checking", "Checking.")]}), "Progressing", "Checking.",
                 id="ready-unknown"),
    pytest.param(activation(status={**SYNCED, "phase": "Suspended"}, suspend=True), "Suspended",
                 "Scheduled runs are suspended (spec.suspend)", id="suspended"),
    pytest.param(activation(suspend=True), "Suspended", "suspended", id="suspended-no-status"),
    pytest.param(activation(status=FAILED, suspend=True), "Suspended",
                 f"suspended (spec.suspend); the last run ended Failed: {UNREACHABLE}",
                 id="suspended-and-failed"),
    pytest.param(activation(generation=3, status=FAILED, suspend=True), "Suspended",
                 "the last run ended Failed", id="suspended-with-a-stale-generation"),
    pytest.param(activation(status={**SYNCED, "phase": "Suspended"}), "Suspended",
                 "suspended", id="phase-suspended"),
    pytest.param(activation(generation=2, status={**SYNCED, "phase": "Suspended"}),
                 "Progressing", "observe generation 2", id="unsuspended-not-yet-observed"),
    pytest.param(
        activation(status={**SYNCED, "lastRun": {"dryRun": True, "added": 5, "removed": 1}},
                   dryRun=True),
        "Healthy", f"Dry run: would add 5 and remove 1, last sync {SYNCED_AT}", id="dry-run"),
])  # fmt: skip
def test_activation_health_follows_ready_generation_runs_and_suspension(
    obj: Object, expected: str, message: str
) -> None:
    status, said = health(obj)

    assert (status, message in said) == (expected, True), said


REACHABLE = {
    "observedGeneration": 1,
    "redisVersion": "7.2.4",
    "lastCheckedTime": SYNCED_AT,
    "conditions": [condition("Ready", "True", "Reachable", "Redis 7.2.4 answered PING.")],
}


@pytest.mark.parametrize(("obj", "expected", "message"), [
    pytest.param(destination(), "Progressing", "Waiting for the operator to check",
                 id="no-status"),
    pytest.param(destination(status={"conditions": []}), "Progressing",
                 "Waiting for the operator to check", id="empty-conditions"),
    pytest.param(destination(status=REACHABLE), "Healthy",
                 f"Redis 7.2.4, last checked {SYNCED_AT}.", id="reachable"),
    pytest.param(destination(status={**REACHABLE, "redisVersion": None}), "Healthy",
                 "Redis 7.2.4 answered PING.", id="reachable-without-a-version"),
    pytest.param(destination(generation=2, status=REACHABLE), "Progressing",
                 "check generation 2 (last checked 1)", id="stale-generation"),
    pytest.param(destination(status={**REACHABLE, "conditions": [
        condition("Ready", "False", "Unreachable", UNREACHABLE)]}), "Degraded",
                 f"Unreachable: {UNREACHABLE}", id="unreachable"),
    pytest.param(destination(status={**REACHABLE, "conditions": [
        condition("Ready", "False", "MissingPermissions", "may not run: sdiffstore.")]}),
                 "Degraded", "MissingPermissions: may not run: sdiffstore.",
                 id="missing-permissions"),
    pytest.param(destination(generation=2, status={**REACHABLE, "conditions": [
        condition("Ready", "False", "InvalidSpec", "spec.url is bad.", generation=2)]}),
                 "Degraded", "InvalidSpec: spec.url is bad.", id="invalid-spec-current"),
    pytest.param(destination(status={**REACHABLE, "conditions": [
        condition("Ready", "Unknown", "Checking", "Checking.")]}), "Progressing", "Checking.",
                 id="ready-unknown"),
])  # fmt: skip
def test_destination_health_follows_ready_for_the_current_generation(
    obj: Object, expected: str, message: str
) -> None:
    status, said = health(obj)

    assert (status, message in said) == (expected, True), said


def report(outcome: str, message: str = "", members: int | None = 40) -> RunReport:
    started = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    return RunReport(
        id="r1", trigger="SpecChange", mode="Full", dry_run=False, started_at=started,
        finished_at=started + timedelta(seconds=2), source_rows=40, added=40,
        members=members, outcome=outcome, message=message,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.mark.parametrize(("status", "generation", "expected"), [
    pytest.param(statuses.finished({}, report("Succeeded"), generation=4, next_sync_time=None),
                 4, ("Healthy", f"40 members, last sync {SYNCED_AT}"), id="succeeded"),
    pytest.param(statuses.finished({}, report("Succeeded"), generation=4, next_sync_time=None),
                 5, ("Progressing", "Waiting for the operator to observe generation 5 "
                                    "(last observed 4)."), id="succeeded-then-edited"),
    pytest.param(statuses.finished({}, report("Failed", "Redis unreachable."), generation=4,
                                   next_sync_time=None),
                 4, ("Degraded", "SyncFailed: Redis unreachable."), id="failed"),
    pytest.param(statuses.finished({}, report("Blocked", GUARD, members=None), generation=4,
                                   next_sync_time=None),
                 4, ("Degraded", f"SafetyGuard: {GUARD}"), id="blocked"),
    pytest.param(statuses.stalled({}, generation=4, reason="InvalidSpec", message="bad."),
                 4, ("Degraded", "InvalidSpec: bad."), id="stalled"),
])  # fmt: skip
def test_activation_health_of_statuses_the_operator_writes(
    status: Object, generation: int, expected: tuple[str, str]
) -> None:
    assert health(activation(generation=generation, status=status)) == expected


def test_the_sandbox_refuses_what_argo_cd_does_not_offer() -> None:
    # NB: proves the sandbox bites, so the matrices above prove the scripts
    # need nothing Argo CD lacks.
    for source in ('return {status = string.upper("healthy")}', 'return {x = ("a"):rep(2)}',
                   "return {x = math.floor(1.5)}", 'return {x = os.getenv("HOME")}'):  # fmt: skip
        with pytest.raises(lua51.LuaError):
            run_lua(source, {})


def cm_patch() -> Object:
    patch: Object = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text(encoding="utf-8"))
    return patch


@pytest.mark.parametrize("kind", KINDS)
def test_argocd_cm_patch_embeds_exactly_the_lua_of_the_script_files(kind: str) -> None:
    embedded = cm_patch()["data"][f"resource.customizations.health.{GROUP}_{kind}"]

    assert embedded == script(kind), f"copy argocd/health/{GROUP}_{kind}.lua into the patch"


def test_argocd_cm_patch_is_the_argocd_cm_config_map_with_one_key_per_kind() -> None:
    patch = cm_patch()
    crd_kinds = {
        yaml.safe_load(path.read_text(encoding="utf-8"))["spec"]["names"]["kind"]
        for path in (ROOT / "crds").glob("*.yaml")
    }

    kubernetes_validate.validate(patch, "1.35.0", strict=True)
    assert (patch["metadata"]["name"], patch["metadata"]["namespace"]) == ("argocd-cm", "argocd")
    assert set(patch["data"]) == {
        f"resource.customizations.health.{GROUP}_{kind}" for kind in crd_kinds
    }


@pytest.mark.parametrize("kind", KINDS)
def test_argocd_readme_documents_the_health_key_of_each_kind(kind: str) -> None:
    readme = (ARGOCD / "README.md").read_text(encoding="utf-8")

    assert f"resource.customizations.health.{GROUP}_{kind}" in readme
