"""Build a small SQLite warehouse from the Jaffle Shop sample data.

The demo needs a warehouse whose contents change over time, so that a second
sync has members to add and to remove. Rather than keeping two databases, this
script cuts the one simulated year of orders at a chosen date: the warehouse
holds every customer, only the orders placed before ``--as-of``, and a one-row
``warehouse_clock`` table saying what "today" is. The audience queries in
``manifests.yaml`` measure recency against that clock, never against the
real date, so the demo gives the same result on any day.

The database file is replaced on each run. Standard library only, so the
script runs before the project is installed.

Usage: ``python build_warehouse.py --db .demo/jaffle.db --as-of 2019-05-01``
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
    customers, orders = build(args.db, args.as_of)
    print(
        f"warehouse {args.db} as of {args.as_of.isoformat()}: "
        f"{customers:,} customers, {orders:,} orders"
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Build the Jaffle Shop SQLite warehouse.")
    parser.add_argument("--db", type=Path, required=True, help="SQLite file to (re)create")
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
