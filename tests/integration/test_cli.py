"""``redis-audiences sync`` end to end: manifests in files, a real Redis.

Each test writes ``kubectl apply``-style manifests into ``tmp_path``, calls
``cli.main`` and reads what it printed (capsys) and what it left in Redis.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from integration.membership_helpers import snapshot
from redis_audiences.cli import main

CLOSED_PORT_URL = "redis://127.0.0.1:1/0"
REPORT_FIELDS = {
    "activation",
    "audience",
    "id",
    "trigger",
    "mode",
    "dryRun",
    "startedAt",
    "finishedAt",
    "durationSeconds",
    "sourceRows",
    "added",
    "removed",
    "unchanged",
    "skipped",
    "outcome",
    "message",
}

Document = dict[str, Any]


def secret(name: str, **string_data: str) -> Document:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "stringData": string_data,
    }


def config_map(name: str, **data: str) -> Document:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def destination(url: str | None = None, *, namespace: str = "default", **spec: Any) -> Document:
    """The RedisDestination ``local``: ``url`` or what ``spec`` says."""
    return {
        "apiVersion": "audiences.dev/v1alpha1",
        "kind": "RedisDestination",
        "metadata": {"name": "local", "namespace": namespace},
        "spec": {"url": url, **spec} if url else spec,
    }


def activation(
    name: str, keys: list[str] | None = None, *, namespace: str = "default", **spec: Any
) -> Document:
    """An activation of audience ``name`` on ``local``, from ``keys`` inline."""
    spec.setdefault("audienceName", name)
    spec.setdefault("source", {"inline": {"keys": keys or []}})
    return {
        "apiVersion": "audiences.dev/v1alpha1",
        "kind": "RedisAudienceActivation",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"destinationRef": {"name": "local"}, **spec},
    }


def manifest(tmp_path: Path, *documents: Document, name: str = "manifests.yaml") -> str:
    """Write ``documents`` as one multi-document file; return its path."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False), encoding="utf-8")
    return str(path)


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def reports(self) -> list[dict[str, Any]]:
        reports: list[dict[str, Any]] = json.loads(self.out)
        return reports


def sync(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    """Run ``redis-audiences sync ARGS`` and capture what it printed."""
    code = main(["sync", *args])
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def is_member(client: redis.Redis, key: str, audience: str) -> bool:
    return bool(client.sismember(f"{key}.dinmo_segments", audience))


def test_cli_exits_0_and_prints_a_text_report_when_every_run_succeeds(
    tmp_path: Path, r: redis.Redis, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = manifest(
        tmp_path,
        destination(redis_url),
        activation("vip", ["user:1", "user:2"]),
        activation("churn", ["user:2"]),
    )

    result = sync(capsys, "-f", path)

    assert result.code == 0, result
    assert result.err == ""
    lines = result.out.splitlines()
    assert lines[0].startswith("default/vip -> audience 'vip': Succeeded, Full run ")
    assert lines[1] == "  rows 2, added 2, removed 0, unchanged 0, skipped 0, members 2"
    assert "default/churn -> audience 'churn': Succeeded" in result.out
    assert is_member(r, "user:1", "vip")
    assert is_member(r, "user:2", "vip")
    assert is_member(r, "user:2", "churn")
    assert not is_member(r, "user:1", "churn")
    assert r.hget("audiences:{vip}:meta", "activation") == b"default/vip"


def test_cli_prints_a_json_list_of_run_reports(
    tmp_path: Path, r: redis.Redis, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = manifest(tmp_path, destination(redis_url), activation("vip", ["user:1", "user:2"]))

    result = sync(capsys, "-f", path, "--output", "json")

    assert result.code == 0, result
    assert result.err == ""
    [report] = result.reports
    assert set(report) >= REPORT_FIELDS
    assert {key: report[key] for key in ("activation", "audience", "trigger", "outcome")} == {
        "activation": "default/vip",
        "audience": "vip",
        "trigger": "Manual",
        "outcome": "Succeeded",
    }
    assert (report["sourceRows"], report["added"], report["removed"]) == (2, 2, 0)
    assert report["dryRun"] is False
    assert report["startedAt"].endswith("Z")
    assert report["finishedAt"].endswith("Z")
    assert isinstance(report["durationSeconds"], float)
    assert is_member(r, "user:1", "vip")


def blocked_by_an_empty_source(redis_url: str) -> list[Document]:
    return [destination(redis_url), activation("vip", [])]


def failed_on_a_closed_port(redis_url: str) -> list[Document]:
    return [destination(CLOSED_PORT_URL), activation("vip", ["user:1"])]


def failed_as_a_cluster_on_a_standalone_server(redis_url: str) -> list[Document]:
    return [destination(redis_url, mode="Cluster"), activation("vip", ["user:1"])]


def failed_on_a_malformed_secret_url(redis_url: str) -> list[Document]:
    return [
        secret("redis", url="redis://127.0.0.1:port/0"),
        destination(urlSecretRef={"name": "redis", "key": "url"}),
        activation("vip", ["user:1"]),
    ]


@pytest.mark.parametrize(
    ("documents", "outcome", "fragment"),
    [
        (blocked_by_an_empty_source, "Blocked", "the source returned no keys"),
        (failed_on_a_closed_port, "Failed", "Redis unreachable: Error 111 connecting"),
        (failed_as_a_cluster_on_a_standalone_server, "Failed", "Redis unreachable: "),
        (failed_on_a_malformed_secret_url, "Failed", "url is not a valid redis:// or rediss://"),
    ],
    ids=["blocked", "closed-port", "cluster-on-standalone", "malformed-url"],
)
def test_cli_exits_1_when_a_run_is_blocked_or_failed(
    tmp_path: Path,
    r: redis.Redis,
    redis_url: str,
    capsys: pytest.CaptureFixture[str],
    documents: Callable[[str], list[Document]],
    outcome: str,
    fragment: str,
) -> None:
    path = manifest(tmp_path, *documents(redis_url))

    result = sync(capsys, "-f", path, "--output", "json")

    assert result.code == 1, result
    assert result.err == ""
    [report] = result.reports
    assert report["outcome"] == outcome
    assert fragment in report["message"]
    assert "\n" not in report["message"]
    assert r.dbsize() == 0


def test_cli_exits_1_when_one_run_of_several_fails_and_still_runs_the_others(
    tmp_path: Path, r: redis.Redis, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = manifest(
        tmp_path, destination(redis_url), activation("empty", []), activation("vip", ["user:1"])
    )

    result = sync(capsys, "-f", path, "--output", "json")

    assert result.code == 1
    assert [report["outcome"] for report in result.reports] == ["Blocked", "Succeeded"]
    assert is_member(r, "user:1", "vip")


def yaml_text(*documents: Document) -> str:
    return yaml.safe_dump_all(documents)


VALID = yaml_text(destination(CLOSED_PORT_URL), activation("vip", ["user:1"]))
INVALID_YAML = "apiVersion: v1\nkind: ConfigMap\ndata:\n  list: a: b\n"
INVALID_SPEC = yaml_text(destination(CLOSED_PORT_URL), activation("vip customers", ["user:1"]))
NO_ACTIVATION = yaml_text(destination(CLOSED_PORT_URL), config_map("members", list="user:1\n"))
MISSING_SECRET = yaml_text(
    destination(urlSecretRef={"name": "redis", "key": "url"}), activation("vip", ["user:1"])
)
MISSING_CONFIG_MAP = yaml_text(
    destination(CLOSED_PORT_URL),
    activation("vip", source={"configMap": {"name": "members", "key": "list"}}),
)
MISSING_DESTINATION = yaml_text(activation("vip", ["user:1"]))
SUFFIX_CLASH = yaml_text(
    destination(CLOSED_PORT_URL, membershipSuffix=":meta"), activation("vip", ["user:1"])
)


@pytest.mark.parametrize(
    ("text", "args", "fragment"),
    [
        (None, [], "cannot read "),
        (INVALID_YAML, [], "is not valid YAML at line 4"),
        (INVALID_SPEC, [], "spec.audienceName: audienceName 'vip customers' contains a space"),
        (VALID, ["--activation", "churn"], "no RedisAudienceActivation 'churn' in the manifests"),
        (NO_ACTIVATION, [], "the manifests hold no RedisAudienceActivation"),
        (MISSING_SECRET, [], "Secret 'redis' (key 'url') not found in namespace 'default'"),
        (MISSING_CONFIG_MAP, [], "ConfigMap 'members' (key 'list') not found in namespace"),
        (MISSING_DESTINATION, [], "refers to RedisDestination 'local', which is not in"),
        (SUFFIX_CLASH, [], "membershipSuffix ':meta' would match"),
    ],
    ids=[
        "missing-file",
        "invalid-yaml",
        "invalid-spec",
        "unknown-activation",
        "no-activation",
        "missing-secret",
        "missing-config-map",
        "missing-destination",
        "suffix-clash",
    ],
)
def test_cli_exits_2_with_one_line_and_no_traceback_for_invalid_input(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str | None,
    args: list[str],
    fragment: str,
) -> None:
    path = tmp_path / "manifests.yaml"
    if text is not None:
        path.write_text(text, encoding="utf-8")

    result = sync(capsys, "-f", str(path), *args)

    assert result.code == 2
    assert result.out == ""
    assert result.err.startswith("redis-audiences: ")
    assert result.err.count("\n") == 1
    assert "Traceback" not in result.err
    assert fragment in result.err


def test_cli_dry_run_on_an_empty_redis_writes_no_key(
    tmp_path: Path, r: redis.Redis, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = manifest(tmp_path, destination(redis_url), activation("vip", ["user:1", "user:2"]))

    result = sync(capsys, "-f", path, "--dry-run")

    assert result.code == 0, result
    assert "Succeeded (dry run)" in result.out
    assert "dry run: nothing was written" in result.out
    assert r.dbsize() == 0


def test_cli_dry_run_leaves_members_ledger_and_metadata_untouched(
    tmp_path: Path, r: redis.Redis, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sync(
        capsys, "-f", manifest(tmp_path, destination(redis_url), activation("vip", ["u:1", "u:2"]))
    )
    before = snapshot(r)
    changed = manifest(
        tmp_path, destination(redis_url), activation("vip", ["u:2", "u:3"]), name="changed.yaml"
    )

    result = sync(capsys, "-f", changed, "--dry-run", "--output", "json")

    assert result.code == 0, result
    [report] = result.reports
    assert (report["dryRun"], report["added"], report["removed"]) == (True, 1, 1)
    assert snapshot(r) == before


@pytest.mark.parametrize(
    ("sync_mode", "flag", "mode"),
    [
        ("Delta", [], "Delta"),
        ("Delta", ["--mode", "full"], "Full"),
        ("Full", [], "Full"),
        ("Full", ["--mode", "delta"], "Delta"),
    ],
    ids=["delta", "delta-run-full", "full", "full-run-delta"],
)
def test_cli_mode_flag_overrides_the_sync_mode(
    tmp_path: Path,
    r: redis.Redis,
    redis_url: str,
    capsys: pytest.CaptureFixture[str],
    sync_mode: str,
    flag: list[str],
    mode: str,
) -> None:
    path = manifest(
        tmp_path, destination(redis_url), activation("vip", ["u:1"], syncMode=sync_mode)
    )
    assert sync(capsys, "-f", path).code == 0  # NB: leaves a ledger, so Delta stays Delta.

    result = sync(capsys, "-f", path, *flag, "--output", "json")

    assert result.code == 0, result
    [report] = result.reports
    assert report["mode"] == mode
    assert "no ledger" not in report["message"]


def test_cli_mode_full_is_reported_when_a_delta_run_has_no_ledger(
    tmp_path: Path, r: redis.Redis, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = manifest(tmp_path, destination(redis_url), activation("vip", ["u:1"], syncMode="Delta"))

    [report] = sync(capsys, "-f", path, "--output", "json").reports

    assert report["mode"] == "Full"
    assert "no ledger from a previous successful run" in report["message"]


@pytest.mark.parametrize(
    ("wanted", "ran"),
    [
        ("churn", ["default/churn", "marketing/churn"]),
        ("default/churn", ["default/churn"]),
        ("marketing/churn", ["marketing/churn"]),
        ("vip", ["default/vip"]),
    ],
)
def test_cli_activation_flag_runs_only_the_named_activation(
    tmp_path: Path,
    r: redis.Redis,
    redis_url: str,
    capsys: pytest.CaptureFixture[str],
    wanted: str,
    ran: list[str],
) -> None:
    path = manifest(
        tmp_path,
        destination(redis_url),
        destination(redis_url, namespace="marketing"),
        activation("vip", ["u:1"]),
        activation("churn", ["u:2"]),
        activation("churn", ["u:3"], namespace="marketing", audienceName="churn_eu"),
    )

    result = sync(capsys, "-f", path, "--activation", wanted, "--output", "json")

    assert result.code == 0, result
    assert [report["activation"] for report in result.reports] == ran
    written = {
        "default/vip": is_member(r, "u:1", "vip"),
        "default/churn": is_member(r, "u:2", "churn"),
        "marketing/churn": is_member(r, "u:3", "churn_eu"),
    }
    assert written == {name: name in ran for name in written}


def test_cli_redis_url_flag_overrides_the_destination(
    tmp_path: Path, r: redis.Redis, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = manifest(tmp_path, destination(CLOSED_PORT_URL), activation("vip", ["u:1"]))

    result = sync(capsys, "-f", path, "--redis-url", redis_url)

    assert result.code == 0, result
    assert is_member(r, "u:1", "vip")


def password_in_a_reachable_secret_url(redis_url: str) -> list[Document]:
    return [
        secret("redis", url=redis_url.replace("redis://", "redis://:s3cr3t@")),
        destination(urlSecretRef={"name": "redis", "key": "url"}),
        activation("vip", ["u:1"]),
    ]


def password_in_an_unreachable_secret_url(redis_url: str) -> list[Document]:
    return [
        secret("redis", url="redis://admin:s3cr3t@127.0.0.1:1/0"),
        destination(urlSecretRef={"name": "redis", "key": "url"}),
        activation("vip", ["u:1"]),
    ]


def password_in_a_malformed_secret_url(redis_url: str) -> list[Document]:
    return [
        secret("redis", url="redis://:s3cr3t/x@127.0.0.1:1/0"),
        destination(urlSecretRef={"name": "redis", "key": "url"}),
        activation("vip", ["u:1"]),
    ]


def password_with_an_unescaped_hash_in_a_secret_url(redis_url: str) -> list[Document]:
    # NB: parsers take 's3cr3t' for the host; a connection error would name it.
    return [
        secret("redis", url="redis://default:pw@s3cr3t#2024@127.0.0.1:1/0"),
        destination(urlSecretRef={"name": "redis", "key": "url"}),
        activation("vip", ["u:1"]),
    ]


def password_with_brackets_in_a_secret_url(redis_url: str) -> list[Document]:
    # NB: urllib then reads an IPv6 host and quotes the bracketed piece.
    return [
        secret("redis", url="redis://default:ab[s3cr3t]cd@127.0.0.1:1/0"),
        destination(urlSecretRef={"name": "redis", "key": "url"}),
        activation("vip", ["u:1"]),
    ]


def password_secret_refused_by_redis(redis_url: str) -> list[Document]:
    return [
        secret("redis", user="nobody", password="s3cr3t"),
        destination(
            redis_url,
            usernameSecretRef={"name": "redis", "key": "user"},
            passwordSecretRef={"name": "redis", "key": "password"},
        ),
        activation("vip", ["u:1"]),
    ]


def password_written_in_place_of_a_ref(redis_url: str) -> list[Document]:
    return [destination(redis_url, passwordSecretRef="s3cr3t"), activation("vip", ["u:1"])]


def password_in_an_unreachable_database_url(redis_url: str) -> list[Document]:
    return [
        secret("warehouse", url="postgresql://reader:s3cr3t@127.0.0.1:1/analytics"),
        destination(redis_url),
        activation(
            "vip",
            source={
                "sql": {
                    "connectionSecretRef": {"name": "warehouse", "key": "url"},
                    "query": "SELECT 1",
                }
            },
            fieldMapping={"redisKey": "k"},
        ),
    ]


@pytest.mark.parametrize("output", ["text", "json"])
@pytest.mark.parametrize(
    ("documents", "code"),
    [
        (password_in_a_reachable_secret_url, 0),
        (password_in_an_unreachable_secret_url, 1),
        (password_in_a_malformed_secret_url, 2),
        (password_with_an_unescaped_hash_in_a_secret_url, 2),
        (password_with_brackets_in_a_secret_url, 2),
        (password_secret_refused_by_redis, 1),
        (password_written_in_place_of_a_ref, 2),
        (password_in_an_unreachable_database_url, 1),
    ],
    ids=[
        "reachable-url",
        "unreachable-url",
        "malformed-url",
        "unescaped-hash",
        "brackets",
        "refused-password",
        "password-instead-of-ref",
        "database-url",
    ],
)
def test_cli_never_prints_a_password(
    tmp_path: Path,
    r: redis.Redis,
    redis_url: str,
    capsys: pytest.CaptureFixture[str],
    documents: Callable[[str], list[Document]],
    code: int,
    output: str,
) -> None:
    path = manifest(tmp_path, *documents(redis_url))

    result = sync(capsys, "-f", path, "--output", output)

    assert result.code == code, result
    assert "s3cr3t" not in result.out + result.err
    assert "Traceback" not in result.err


def test_cli_syncs_a_csv_config_map_end_to_end(
    tmp_path: Path, r: redis.Redis, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = "id,redis_key,tier\n1,customer:1,gold\n2,customer:2,gold\n3,,gold\n4,customer:4,gold\n"
    path = manifest(
        tmp_path,
        config_map("gold-customers", **{"customers.csv": rows}),
        destination(redis_url),
        activation(
            "gold",
            source={
                "configMap": {"name": "gold-customers", "key": "customers.csv", "format": "csv"}
            },
            fieldMapping={"redisKey": "redis_key"},
        ),
    )

    result = sync(capsys, "-f", path, "--output", "json")

    assert result.code == 0, result
    [report] = result.reports
    assert (report["sourceRows"], report["added"], report["skipped"]) == (4, 3, 1)
    assert [is_member(r, f"customer:{n}", "gold") for n in (1, 2, 4)] == [True, True, True]
    assert r.hget("audiences:{gold}:meta", "members") == b"3"


def build_warehouse(path: Path, tiers: dict[int, str]) -> None:
    """A SQLite file with one table: customers(id, tier)."""
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS customers (id INTEGER PRIMARY KEY, tier TEXT)"
        )
        connection.execute("DELETE FROM customers")
        connection.executemany("INSERT INTO customers VALUES (?, ?)", tiers.items())
    connection.close()


def test_cli_syncs_a_sql_query_on_a_sqlite_file_and_follows_its_changes(
    tmp_path: Path, r: redis.Redis, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "warehouse.db"
    build_warehouse(database, {1: "gold", 2: "gold", 3: "silver", 4: "gold"})
    path = manifest(
        tmp_path,
        secret("warehouse", url=f"sqlite:///{database}"),
        destination(redis_url),
        activation(
            "gold",
            source={
                "sql": {
                    "connectionSecretRef": {"name": "warehouse", "key": "url"},
                    "query": "SELECT 'customer:' || id AS redis_key FROM customers "
                    "WHERE tier = 'gold'",
                }
            },
            fieldMapping={"redisKey": "redis_key"},
        ),
    )
    assert sync(capsys, "-f", path).code == 0
    build_warehouse(database, {1: "gold", 2: "silver", 3: "gold", 4: "gold"})

    result = sync(capsys, "-f", path, "--output", "json")

    assert result.code == 0, result
    [report] = result.reports
    assert (report["mode"], report["added"], report["removed"]) == ("Delta", 1, 1)
    members = {n: is_member(r, f"customer:{n}", "gold") for n in (1, 2, 3, 4)}
    assert members == {1: True, 2: False, 3: True, 4: True}


def large_audience(tmp_path: Path, redis_url: str) -> str:
    """Manifests of 20,000 keys in a ConfigMap: enough for progress to tick."""
    lines = "".join(f"user:{number}\n" for number in range(20000))
    return manifest(
        tmp_path,
        config_map("members", list=lines),
        destination(redis_url),
        activation("vip", source={"configMap": {"name": "members", "key": "list"}}),
    )


def pretend_stderr_is_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the stderr that capsys captures claim to be a capable terminal.

    Call it in the test body: during fixture setup ``sys.stderr`` is not yet
    the stream that capsys reads.
    """
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setenv("TERM", "xterm-256color")
    for name in ("TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)


def test_cli_prints_no_progress_when_stderr_is_not_a_terminal(
    tmp_path: Path, r: redis.Redis, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = sync(capsys, "-f", large_audience(tmp_path, redis_url))

    assert result.code == 0, result
    assert result.err == ""
    assert len(result.out.splitlines()) == 3  # NB: two report lines and the no-ledger note.
    assert result.out.startswith("default/vip -> audience 'vip': Succeeded")


def test_cli_shows_progress_on_stderr_when_it_is_a_terminal(
    tmp_path: Path,
    r: redis.Redis,
    redis_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pretend_stderr_is_a_terminal(monkeypatch)

    result = sync(capsys, "-f", large_audience(tmp_path, redis_url))

    assert result.code == 0, result
    assert "vip: " in result.err
    assert "staged 20,000" in result.err
    assert len(result.out.splitlines()) == 3


def test_cli_prints_no_progress_with_json_output_even_on_a_terminal(
    tmp_path: Path,
    r: redis.Redis,
    redis_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pretend_stderr_is_a_terminal(monkeypatch)

    result = sync(capsys, "-f", large_audience(tmp_path, redis_url), "--output", "json")

    assert result.code == 0, result
    assert result.err == ""
    assert result.reports[0]["outcome"] == "Succeeded"
