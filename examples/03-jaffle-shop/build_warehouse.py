"""Build a small warehouse from the Jaffle Shop sample data: SQLite or any URL.

The demo needs a warehouse whose contents change over time, so that a second
sync has members to add and to remove. Rather than keeping two databases, this
script cuts the one simulated year of orders at a chosen date: the warehouse
holds every customer, only the orders placed before ``--as-of``, and a one-row
``warehouse_clock`` table saying what "today" is. The audience queries in
``manifests.yaml`` measure recency against that clock, never against the
real date, so the demo gives the same result on any day.

Two targets. ``--db PATH`` (the demo's) replaces a SQLite file using the
standard library only, so it runs before the project is installed.
``--url URL`` loads the same tables into the database of a SQLAlchemy URL,
such as ``postgresql://postgres@127.0.0.1:5432/jaffle_shop``: it needs
SQLAlchemy and the database's driver (both installed with the project),
replaces the three tables if they exist, and types the columns as the
database understands them (``ordered_at`` a timestamp, ``as_of`` a date), so
``postgresql.yaml`` can compare them without casts. It never prints the URL.

Usage: ``python build_warehouse.py --db .demo/jaffle.db --as-of 2019-05-01``
or ``python build_warehouse.py --url postgresql://... --as-of 2019-09-01``
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"

SCHEMA = """
CREATE TABLE customers (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE orders (
    id          TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    ordered_at  TEXT NOT NULL,  -- ISO 8601, local time of the store
    store_id    TEXT NOT NULL,
    subtotal    INTEGER NOT NULL,  -- cents
    tax_paid    INTEGER NOT NULL,  -- cents
    order_total INTEGER NOT NULL   -- cents
);
CREATE INDEX orders_by_customer ON orders (customer_id, ordered_at);
CREATE TABLE warehouse_clock (
    as_of TEXT NOT NULL  -- YYYY-MM-DD: the warehouse holds orders before this day
);
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.db is not None:
        where, counts = str(args.db), build(args.db, args.as_of)
    else:
        where, counts = _describe(args.url), build_at_url(args.url, args.as_of)
    customers, orders = counts
    print(
        f"warehouse {where} as of {args.as_of.isoformat()}: "
        f"{customers:,} customers, {orders:,} orders"
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Build the Jaffle Shop warehouse.")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--db", type=Path, help="SQLite file to (re)create")
    target.add_argument("--url", help="SQLAlchemy URL of a database to load the tables into")
    parser.add_argument(
        "--as-of",
        type=dt.date.fromisoformat,
        required=True,
        metavar="YYYY-MM-DD",
        help="keep only orders placed before this day",
    )
    return parser


def build(db: Path, as_of: dt.date) -> tuple[int, int]:
    """Replace ``db`` with a warehouse cut at ``as_of``; return row counts."""
    db.parent.mkdir(parents=True, exist_ok=True)
    db.unlink(missing_ok=True)

    with sqlite3.connect(db) as connection:
        connection.executescript(SCHEMA)
        customers = connection.executemany(
            "INSERT INTO customers VALUES (?, ?)", _rows("raw_customers.csv.gz")
        ).rowcount
        orders = connection.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)", _orders_before(as_of)
        ).rowcount
        connection.execute("INSERT INTO warehouse_clock VALUES (?)", (as_of.isoformat(),))
    connection.close()
    return customers, orders


def build_at_url(url: str, as_of: dt.date) -> tuple[int, int]:
    """Replace the tables in the database at ``url``; return row counts."""
    # NB: imported here so that --db keeps working without SQLAlchemy.
    import sqlalchemy as sa  # noqa: PLC0415

    metadata = sa.MetaData()
    customers, orders, clock = _tables(sa, metadata)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            metadata.drop_all(connection)
            metadata.create_all(connection)
            connection.execute(customers.insert(), list(_typed_customers()))
            for chunk in _chunks(_typed_orders(as_of), size=5000):
                connection.execute(orders.insert(), chunk)
            connection.execute(clock.insert(), [{"as_of": as_of}])
            counts = [
                connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                for table in (customers, orders)
            ]
    finally:
        engine.dispose()
    return counts[0], counts[1]


def _tables(sa: Any, metadata: Any) -> tuple[Any, Any, Any]:
    """The three tables of ``SCHEMA``, typed for any database."""
    customers = sa.Table(
        "customers",
        metadata,
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
    )
    orders = sa.Table(
        "orders",
        metadata,
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("customer_id", sa.Text, sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("ordered_at", sa.DateTime, nullable=False),
        sa.Column("store_id", sa.Text, nullable=False),
        sa.Column("subtotal", sa.Integer, nullable=False),
        sa.Column("tax_paid", sa.Integer, nullable=False),
        sa.Column("order_total", sa.Integer, nullable=False),
        sa.Index("orders_by_customer", "customer_id", "ordered_at"),
    )
    clock = sa.Table("warehouse_clock", metadata, sa.Column("as_of", sa.Date, nullable=False))
    return customers, orders, clock


def _typed_customers() -> Iterator[dict[str, object]]:
    for id_, name in _rows("raw_customers.csv.gz"):
        yield {"id": id_, "name": name}


def _typed_orders(as_of: dt.date) -> Iterator[dict[str, object]]:
    """Orders before ``as_of`` as typed values: a datetime and integers."""
    for id_, customer, ordered_at, store, subtotal, tax, total in _orders_before(as_of):
        yield {
            "id": id_,
            "customer_id": customer,
            "ordered_at": dt.datetime.fromisoformat(ordered_at),
            "store_id": store,
            "subtotal": int(subtotal),
            "tax_paid": int(tax),
            "order_total": int(total),
        }


def _chunks(rows: Iterator[dict[str, object]], *, size: int) -> Iterator[list[dict[str, object]]]:
    chunk: list[dict[str, object]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _describe(url: str) -> str:
    """Name the database without the URL, which may hold a password."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    parsed = make_url(url)
    return f"{parsed.get_backend_name()} database {parsed.database!r}"


def _orders_before(as_of: dt.date) -> Iterator[list[str]]:
    # ISO timestamps compare as text, so no parsing is needed per row.
    cutoff = as_of.isoformat()
    return (row for row in _rows("raw_orders.csv.gz") if row[2] < cutoff)


def _rows(name: str) -> Iterator[list[str]]:
    """Yield the rows of a gzipped CSV file under ``data/``, header skipped."""
    with gzip.open(DATA / name, "rt", encoding="utf-8", newline="") as file:
        reader = csv.reader(file)
        next(reader)
        yield from reader


if __name__ == "__main__":
    sys.exit(main())
