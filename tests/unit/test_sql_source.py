"""``SqlSource`` on SQLite files: columns, batches, errors and streaming."""

from __future__ import annotations

import importlib.util
import sqlite3
import tracemalloc
from collections.abc import Iterable
from pathlib import Path

import pytest

from redis_audiences.sources import KeyStream, SourceError, SqlSource

SECRET = "s3cr3tpw"

MEMBERS = [
    (1, "user:1", "Ann"),
    (2, None, "Bob"),
    (3, "", "Cid"),
    (4, "user:*?[x]\\", "Dee"),
    (5, "profil:zoë", "Eve"),
    (6, "user:1", "Fay"),
    (7, "k" * (64 * 1024 + 1), "Gus"),
]


def create_database(path: Path, rows: Iterable[tuple[int, str | None, str]]) -> str:
    """Write a ``members(id, profile_key, name)`` table; return its URL."""
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE members (id INTEGER, profile_key TEXT, name TEXT)")
        connection.executemany("INSERT INTO members VALUES (?, ?, ?)", rows)
    connection.close()
    return f"sqlite:///{path}"


@pytest.fixture
def members_url(tmp_path: Path) -> str:
    return create_database(tmp_path / "members.db", MEMBERS)


def test_sql_source_reads_the_key_column_and_counts_what_it_skips(members_url: str) -> None:
    source = SqlSource(members_url, "SELECT * FROM members ORDER BY id", key_column="profile_key")
    stream = KeyStream(source)

    keys = [key for batch in stream for key in batch]

    assert keys == [b"user:1", b"user:*?[x]\\", "profil:zoë".encode(), b"user:1"]
    assert (stream.rows, stream.skipped) == (7, 3)


@pytest.mark.parametrize(("batch_size", "sizes"), [(3, [3, 3, 1]), (7, [7]), (100, [7])])
def test_sql_source_yields_batches_of_at_most_batch_size(
    members_url: str, batch_size: int, sizes: list[int]
) -> None:
    source = SqlSource(members_url, "SELECT id FROM members ORDER BY id", key_column="id")

    batches = list(source.raw_batches(batch_size=batch_size))

    assert [len(batch) for batch in batches] == sizes
    assert [value for batch in batches for value in batch] == list(range(1, 8))


def test_sql_source_yields_nothing_for_an_empty_result(members_url: str) -> None:
    source = SqlSource(members_url, "SELECT name FROM members WHERE id < 0", key_column="name")

    assert list(source.raw_batches(batch_size=10)) == []


def test_sql_source_rejects_missing_key_column_before_any_row(members_url: str) -> None:
    query = "SELECT id, name AS Profile_Key FROM members"
    source = SqlSource(members_url, query, key_column="profile_key")

    with pytest.raises(SourceError) as caught:
        next(source.raw_batches(batch_size=1))

    assert str(caught.value) == (
        "column 'profile_key' not found in the result of the SQL query on sqlite "
        "database; it returned: 'id', 'Profile_Key'."
    )


def test_sql_source_rejects_a_statement_that_returns_no_rows(members_url: str) -> None:
    source = SqlSource(members_url, "SELECT 1 WHERE 0 UNION ALL SELECT 1 LIMIT 0", key_column="id")
    ddl = SqlSource(members_url, "CREATE TABLE other (id TEXT)", key_column="id")

    with pytest.raises(SourceError, match="column 'id' not found"):
        next(source.raw_batches(batch_size=1))
    with pytest.raises(SourceError, match="readonly database"):
        next(ddl.raw_batches(batch_size=1))


@pytest.mark.parametrize("statement", [
    "DELETE FROM members",
    "DROP TABLE members",
    "UPDATE members SET name = 'x' RETURNING id",
])  # fmt: skip
def test_sql_source_refuses_to_change_the_database(members_url: str, statement: str) -> None:
    with pytest.raises(SourceError, match="readonly database"):
        list(SqlSource(members_url, statement, key_column="id").raw_batches(batch_size=10))

    names = SqlSource(members_url, "SELECT name FROM members", key_column="name")
    assert [name for batch in names.raw_batches(batch_size=10) for name in batch]


def test_sql_source_describes_the_database_kind_but_not_the_url(tmp_path: Path) -> None:
    source = SqlSource(f"sqlite:///{tmp_path}/{SECRET}.db", "SELECT 1 AS k", key_column="k")

    assert source.describe() == "SQL query on sqlite database"
    assert SECRET not in repr(source)


NO_PYMYSQL = importlib.util.find_spec("pymysql") is None


@pytest.mark.parametrize(
    ("url", "query", "message"),
    [
        ("{tmp}/no/such/dir/x.db", "SELECT 1 AS k", "failed to connect: unable to open database"),
        ("{db}", "SELEC 1 AS k", 'failed to run: near "SELEC": syntax error.'),
        ("{db}", "SELECT k FROM nowhere", "failed to run: no such table: nowhere."),
        ("not a url", "SELECT 1 AS k", "an unparsable database failed to set up: Could not"),
        (f"nosuchdb://me:{SECRET}@dbhost/x", "SELECT 1 AS k", "failed to set up: Can't load"),
        (f"sqlite://me:{SECRET}@dbhost/x.db", "SELECT 1 AS k", "Invalid SQLite URL: ***."),
        pytest.param(
            f"mysql+pymysql://me:{SECRET}@dbhost/x",
            "SELECT 1 AS k",
            "mysql database failed to set up: No module named 'pymysql'.",
            marks=pytest.mark.skipif(not NO_PYMYSQL, reason="pymysql is installed"),
        ),
    ],
    ids=[
        "unreachable",
        "syntax-error",
        "missing-table",
        "bad-url",
        "unknown-dialect",
        "url-in-driver-message",
        "missing-driver",
    ],
)
def test_sql_source_reports_failures_in_one_line_without_secrets(
    members_url: str, tmp_path: Path, url: str, query: str, message: str
) -> None:
    url = url.format(db=members_url, tmp=f"sqlite:///{tmp_path}")
    source = SqlSource(url, query, key_column="k")

    with pytest.raises(SourceError) as caught:
        next(source.raw_batches(batch_size=1))

    error = caught.value
    assert message in str(error)
    assert "\n" not in str(error)
    assert SECRET not in str(error) and "dbhost" not in str(error) and url not in str(error)
    assert error.__cause__ is None and error.__suppress_context__


def test_sql_source_streams_a_large_table_in_bounded_memory(tmp_path: Path) -> None:
    # Held at once, 300,000 keys of 64 characters take over 40 MB of strings,
    # bytes and rows; streamed in batches of 1,000, well under 1 MB.
    rows = ((n, f"user:{n:010d}:" + "x" * 48, "") for n in range(300_000))
    url = create_database(tmp_path / "big.db", rows)
    source = SqlSource(url, "SELECT profile_key FROM members", key_column="profile_key")
    list(KeyStream(SqlSource(url, "SELECT 1 AS k", key_column="k")))  # warm up imports, caches

    tracemalloc.start()
    try:
        stream = KeyStream(source, batch_size=1000)
        written = sum(len(batch) for batch in stream)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (written, stream.rows, stream.skipped) == (300_000, 300_000, 0)
    assert peak < 4 * 1024 * 1024, f"peak traced memory {peak / 1e6:.1f} MB"
