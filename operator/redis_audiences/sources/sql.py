"""Keys read by a SQL query (``source.sql``), through SQLAlchemy Core.

The query runs on one connection without a pool, and its rows are streamed:
``stream_results`` makes PostgreSQL (psycopg2) use a server-side cursor, so
the database hands rows over one batch at a time, and SQLite reads lazily
anyway. The connection is never committed, so a query with side effects is
rolled back.

The database URL carries credentials, so it never leaves this module:
``describe()`` names only the kind of database, and every SQLAlchemy or
driver error becomes a one-line ``SourceError`` built from the driver's first
line, with the URL and the password scrubbed out. The original exception is
not chained, so a logged traceback cannot print it either.

Limitations: the query must return rows (a ``SELECT`` or ``VALUES``);
PostgreSQL refuses anything else inside a server-side cursor. The key column
is matched by its exact name as the database reports it (PostgreSQL folds
unquoted names to lower case).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from urllib.parse import urlsplit

from sqlalchemy import Connection, CursorResult, Engine, create_engine, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from redis_audiences.sources.base import SourceError

_FAILURES = (SQLAlchemyError, ImportError, ValueError)
"""What SQLAlchemy raises for a bad URL, a missing driver or a failed query."""


class SqlSource:
    """Stream one column of a SQL query's rows."""

    def __init__(self, url: str, query: str, *, key_column: str) -> None:
        self._url = url
        self.query = query
        self.key_column = key_column

    def __repr__(self) -> str:
        return f"SqlSource(<{self.describe()}>, key_column={self.key_column!r})"

    def describe(self) -> str:
        """Name the kind of database queried, never its URL."""
        return f"SQL query on {_backend_name(self._url)} database"

    def raw_batches(self, *, batch_size: int) -> Iterator[list[object]]:
        """Yield the key column of each row, ``batch_size`` rows at a time.

        Raises ``SourceError`` before the first batch when the database cannot
        be reached, the query fails or it returns no column ``key_column``.
        """
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")

        with self._failing_as("failed to set up"):
            engine = create_engine(self._url, poolclass=NullPool)
        try:
            yield from self._stream(engine, batch_size)
        finally:
            engine.dispose()

    def _stream(self, engine: Engine, batch_size: int) -> Iterator[list[object]]:
        with self._failing_as("failed to connect"):
            connection = engine.connect()
            _make_read_only(connection)

        with self._failing_as("failed while reading rows"), connection:
            with self._failing_as("failed to run"):
                streaming = connection.execution_options(
                    stream_results=True, max_row_buffer=batch_size
                )
                result = streaming.execute(text(self.query))
            index = self._key_index(result)

            for batch in result.partitions(batch_size):
                yield [row[index] for row in batch]

    def _key_index(self, result: CursorResult[object]) -> int:
        if not result.returns_rows:
            raise SourceError(f"{self.describe()} returns no result set; it must be a SELECT.")

        columns = list(result.keys())
        if self.key_column not in columns:
            raise SourceError(
                f"column {self.key_column!r} not found in the result of the "
                f"{self.describe()}; it returned: {', '.join(map(repr, columns))}."
            )
        return columns.index(self.key_column)

    @contextmanager
    def _failing_as(self, stage: str) -> Iterator[None]:
        """Re-raise database failures as one-line, scrubbed ``SourceError``."""
        try:
            yield
        except _FAILURES as error:
            detail = _scrubbed(_first_line(error), _secrets(self._url))
            raise SourceError(f"{self.describe()} {stage}: {detail.rstrip('.')}.") from None


def _make_read_only(connection: Connection) -> None:
    """Refuse writes where the database can: a query reads, never changes.

    PostgreSQL runs the query in a READ ONLY transaction and SQLite with
    ``query_only``; elsewhere the transaction is rolled back at the end.
    """
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.exec_driver_sql("SET TRANSACTION READ ONLY")
    elif dialect == "sqlite":
        connection.exec_driver_sql("PRAGMA query_only = ON")


def _backend_name(url: str) -> str:
    """Say which kind of database a URL points at, such as ``postgresql``."""
    try:
        return make_url(url).get_backend_name()
    except (ArgumentError, ValueError):
        return "an unparsable"


def _first_line(error: BaseException) -> str:
    """Return the driver's own first line of an error, or its class name."""
    cause = error.orig if isinstance(error, DBAPIError) and error.orig else error
    lines = str(cause).strip().splitlines()
    return lines[0].strip() if lines else type(cause).__name__


def _secrets(url: str) -> list[str]:
    """List what must never be shown in a message.

    That is the URL as given and as SQLAlchemy renders it (password masked or
    not, since both show the user and host), and the password raw and decoded.
    """
    secrets = [url, *_authority_pieces(url)]
    with suppress(ValueError):
        secrets.append(urlsplit(url).password or "")
    with suppress(ArgumentError, ValueError):
        parsed = make_url(url)
        secrets += [
            parsed.password or "",
            parsed.render_as_string(hide_password=False),
            parsed.render_as_string(hide_password=True),
        ]
    return [secret for secret in secrets if secret]


def _authority_pieces(url: str) -> list[str]:
    """Every part of the URL's user:password@host that a parser may quote.

    A password with an unescaped '@' or ':' is split in the wrong place, and
    drivers then quote a "host" or "port" that is really part of it; so every
    run of the authority between two separators counts as secret.
    """
    authority = url.partition("://")[2].partition("/")[0]
    credentials_end = authority.rfind("@")  # NB: what follows the last '@' is the host.
    cuts = [0, *(i + 1 for i, c in enumerate(authority) if c in "@:"), len(authority) + 1]
    pieces = {authority[a : b - 1] for a in cuts for b in cuts if a < credentials_end < b}
    return [piece for piece in pieces if len(piece) >= 3]


def _scrubbed(message: str, secrets: list[str]) -> str:
    """Replace every secret in ``message`` with ``***``, longest first."""
    for secret in sorted(secrets, key=len, reverse=True):
        message = message.replace(secret, "***")
    return message
