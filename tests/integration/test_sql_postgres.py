"""``SqlSource`` against the real PostgreSQL server on 127.0.0.1:5432.

Each test works on its own uniquely named table and drops it afterwards, so
the tests can share the ``test`` database with anything else.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from redis_audiences.sources import KeyStream, SourceError, SqlSource

pytestmark = pytest.mark.postgres

URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
SECRET = "s3cr3tpw"
ROWS = 25_000


@pytest.fixture
def admin() -> Iterator[sa.Engine]:
    engine = sa.create_engine(URL, poolclass=NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def members(admin: sa.Engine) -> Iterator[str]:
    """Create a members table of ``ROWS`` rows, every tenth key null."""
    table = f"raa_members_{uuid.uuid4().hex[:12]}"
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE TABLE {table} (id int, profile_key text)"))
        connection.execute(
            sa.text(
                f"INSERT INTO {table} SELECT n, CASE WHEN n % 10 = 0 THEN NULL "
                f"ELSE 'user:' || n END FROM generate_series(1, {ROWS}) AS n"
            )
        )
    yield table
    with admin.begin() as connection:
        connection.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))


def current_statement(admin: sa.Engine, application_name: str) -> str:
    """Return what the session with this application name last ran."""
    query = sa.text("SELECT query FROM pg_stat_activity WHERE application_name = :name")
    with admin.connect() as connection:
        return str(connection.execute(query, {"name": application_name}).scalar_one())


def test_sql_source_reads_postgres_rows_through_a_server_side_cursor(
    admin: sa.Engine, members: str
) -> None:
    application_name = f"raa-test-{uuid.uuid4().hex[:8]}"
    url = f"{URL}?application_name={application_name}"
    query = f"SELECT profile_key FROM {members} ORDER BY id"
    batches = SqlSource(url, query, key_column="profile_key").raw_batches(batch_size=1000)

    first = next(batches)
    statement = current_statement(admin, application_name)
    rest = list(batches)

    # The server hands rows over a batch at a time (the exact FETCH size
    # depends on SQLAlchemy's buffering), never the whole result.
    fetched = re.fullmatch(r'FETCH FORWARD (\d+) FROM "\w+"', statement)
    assert fetched and int(fetched[1]) <= 1000, statement
    assert first[:3] == ["user:1", "user:2", "user:3"]
    assert [len(batch) for batch in [first, *rest]] == [1000] * (ROWS // 1000)


def test_sql_source_counts_null_keys_from_postgres_as_skipped(members: str) -> None:
    source = SqlSource(URL, f"SELECT * FROM {members}", key_column="profile_key")
    stream = KeyStream(source, batch_size=4000)

    written = sum(len(batch) for batch in stream)

    assert (written, stream.rows, stream.skipped) == (ROWS * 9 // 10, ROWS, ROWS // 10)


def test_sql_source_rejects_missing_key_column_before_any_postgres_row(members: str) -> None:
    source = SqlSource(URL, f"SELECT id, profile_key AS Email FROM {members}", key_column="Email")

    with pytest.raises(SourceError) as caught:
        next(source.raw_batches(batch_size=10))

    assert "column 'Email' not found" in str(caught.value)
    assert "it returned: 'id', 'email'." in str(caught.value)


@pytest.mark.parametrize(
    ("url", "query", "message"),
    [
        (
            f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:1/test",
            "SELECT 1 AS k",
            'failed to connect: connection to server at "127.0.0.1", port 1 failed: '
            "Connection refused.",
        ),
        (
            f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:5432/raa_no_such_db",
            "SELECT 1 AS k",
            'database "raa_no_such_db" does not exist.',
        ),
        (
            f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:5432/test",
            "SELECT k FROM WHERE",
            'failed to run: syntax error at or near "WHERE".',
        ),
        (
            f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:5432/test",
            "SELECT k FROM raa_no_such_table",
            'failed to run: relation "raa_no_such_table" does not exist.',
        ),
        (
            f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:5432/test",
            "DELETE FROM raa_no_such_table RETURNING k",
            'failed to run: syntax error at or near "DELETE".',
        ),
    ],
    ids=["unreachable-port", "unknown-database", "syntax-error", "missing-table", "not-select"],
)
def test_sql_source_reports_postgres_failures_in_one_line_without_the_password(
    url: str, query: str, message: str
) -> None:
    source = SqlSource(url, query, key_column="k")

    with pytest.raises(SourceError) as caught:
        next(source.raw_batches(batch_size=10))

    error = str(caught.value)
    assert error.startswith("SQL query on postgresql database ")
    assert message in error
    assert "\n" not in error
    assert SECRET not in error and "postgresql+psycopg2://" not in error


def test_sql_source_runs_postgres_queries_read_only(admin: sa.Engine) -> None:
    sequence = f"raa_seq_{uuid.uuid4().hex[:8]}"
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SEQUENCE {sequence}"))
    try:
        query = f"SELECT nextval('{sequence}')::text AS profile_key"
        with pytest.raises(SourceError, match="read-only transaction"):
            list(SqlSource(URL, query, key_column="profile_key").raw_batches(batch_size=10))
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SEQUENCE {sequence}"))
