"""Keys read from one entry of a ConfigMap (``source.configMap``).

The controller resolves the ConfigMap and hands this module the entry's text;
this module only parses it. Three formats:

- ``lines``: one key per line, as it is (only a trailing ``\\r`` is dropped).
  A blank line is an empty key, so it is counted as skipped rather than
  silently lost.
- ``csv``: a header row, then rows; ``key_field`` names the key column. Fully
  blank rows are ignored, as ``csv.DictReader`` does; a row too short to reach
  the key column yields ``None``. Quoting is parsed strictly: a stray quote
  fails the source instead of turning into a wrong key.
- ``ndjson``: one JSON object per line; blank lines are ignored and an object
  without the key field yields ``None``.

A byte-order mark at the start of the text is an encoding artifact, not part
of the first key or header, and is dropped. Rows are parsed lazily and handed
out in batches; the text itself is already in memory (ConfigMaps are capped at
1 MiB by Kubernetes), but no list of all rows is built.

Limitations: a CSV field longer than the ``csv`` module's field limit (128 KiB)
fails the whole source instead of being skipped as an over-long key; raising
that limit would change it for the whole process.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Literal, cast, get_args

from redis_audiences.sources.base import SourceError
from redis_audiences.sources.batching import batched

Format = Literal["lines", "csv", "ndjson"]

_BOM = "\ufeff"


class ConfigMapSource:
    """Stream the key field of a ConfigMap entry in ``lines``, CSV or NDJSON.

    A format or key field that cannot work is refused by the constructor;
    a key field absent from the data is refused before the first batch.
    """

    def __init__(self, text: str, *, fmt: Format, key_field: str | None, name: str) -> None:
        if fmt not in get_args(Format):
            raise SourceError(f"{name} has format {fmt!r}; use 'lines', 'csv' or 'ndjson'.")
        if fmt != "lines" and key_field is None:
            raise SourceError(
                f"{name} is in {fmt} format, which needs a key field "
                "(fieldMapping.redisKey); none was given."
            )
        self.text = text.removeprefix(_BOM)
        self.fmt = fmt
        self.key_field = key_field
        self.name = name

    def describe(self) -> str:
        """Return the label given by the caller, such as the ConfigMap entry."""
        return self.name

    def raw_batches(self, *, batch_size: int) -> Iterator[list[object]]:
        """Yield the key of each row, ``batch_size`` rows at a time."""
        return batched(self._rows(), size=batch_size)

    def _rows(self) -> Iterator[object]:
        if self.fmt == "lines":
            return self._lines()

        # NB: the constructor refused csv and ndjson without a key field.
        field = cast(str, self.key_field)
        return self._csv_rows(field) if self.fmt == "csv" else self._ndjson_rows(field)

    def _lines(self) -> Iterator[object]:
        # StringIO splits on "\n" only, so "\r" and other separators stay in
        # keys, and a final newline ends the last line instead of opening one.
        for line in io.StringIO(self.text):
            yield line.removesuffix("\n").removesuffix("\r")

    def _csv_rows(self, field: str) -> Iterator[object]:
        reader = csv.reader(io.StringIO(self.text, newline=""), strict=True)
        try:
            index = self._csv_key_index(next(reader, None), field)
            for row in reader:
                if row:
                    yield row[index] if index < len(row) else None
        except csv.Error as error:
            raise SourceError(
                f"{self.name} is not valid CSV at line {reader.line_num}: {error}."
            ) from None

    def _csv_key_index(self, header: list[str] | None, field: str) -> int:
        if header is None:
            raise SourceError(f"{self.name} is empty; a CSV source needs a header row.")
        if field not in header:
            raise SourceError(
                f"column {field!r} not found in the header of {self.name}; "
                f"the columns are: {_quoted(header)}."
            )
        return header.index(field)

    def _ndjson_rows(self, field: str) -> Iterator[object]:
        first = True
        for number, line in enumerate(io.StringIO(self.text), start=1):
            if not line.strip():
                continue
            record = self._ndjson_record(line, number)
            if first and field not in record:
                raise SourceError(
                    f"field {field!r} not found in the first record of {self.name} "
                    f"(line {number}); its fields are: {_quoted(record)}."
                )
            first = False
            yield record.get(field)

    def _ndjson_record(self, line: str, number: int) -> dict[str, object]:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise SourceError(
                f"line {number} of {self.name} is not valid JSON: {error.msg}."
            ) from None
        if not isinstance(record, dict):
            raise SourceError(
                f"line {number} of {self.name} holds a JSON {_json_kind(record)}, not an object."
            )
        return record


def _json_kind(value: object) -> str:
    """Name a decoded JSON value's type the way JSON does."""
    kinds: dict[type[object], str] = {
        list: "array",
        str: "string",
        bool: "boolean",
        type(None): "null",
    }
    return kinds.get(type(value), "number")


def _quoted(names: list[str] | dict[str, object]) -> str:
    """List names for a message: ``'a', 'b'``, or ``(none)``."""
    return ", ".join(repr(name) for name in names) or "(none)"
