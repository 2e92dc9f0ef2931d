"""Inline and ConfigMap sources, and what ``KeyStream`` makes of their rows."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from decimal import Decimal
from uuid import UUID

import pytest

from redis_audiences.sources import (
    MAX_KEY_BYTES,
    ConfigMapSource,
    InlineSource,
    KeySource,
    KeyStream,
    SourceError,
)
from redis_audiences.sources.base import encode_keys

NAME = "configMap vip/members"


def stream(source: KeySource, *, batch_size: int = 5000) -> tuple[list[bytes], int, int]:
    """Read a source through ``KeyStream``: keys, rows and skipped rows."""
    keys = KeyStream(source, batch_size=batch_size)
    read = [key for batch in keys for key in batch]
    return read, keys.rows, keys.skipped


def rows_of(source: KeySource, *, batch_size: int = 5000) -> list[object]:
    """Read a source's raw key values, all batches joined."""
    return [value for batch in source.raw_batches(batch_size=batch_size) for value in batch]


def lines_of(keys: Sequence[str | None]) -> ConfigMapSource:
    text = "".join(f"{key or ''}\n" for key in keys)
    return ConfigMapSource(text, fmt="lines", key_field=None, name=NAME)


def csv_of(keys: Sequence[str | None]) -> ConfigMapSource:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "key"])
    for number, key in enumerate(keys):
        writer.writerow([number] if key is None else [number, key])
    return ConfigMapSource(out.getvalue(), fmt="csv", key_field="key", name=NAME)


def ndjson_of(keys: Sequence[str | None]) -> ConfigMapSource:
    text = "".join(json.dumps({"id": number, "key": key}) + "\n" for number, key in enumerate(keys))
    return ConfigMapSource(text, fmt="ndjson", key_field="key", name=NAME)


def inline_of(keys: Sequence[str | None]) -> InlineSource:
    return InlineSource([key or "" for key in keys])


SOURCES: dict[str, Callable[[Sequence[str | None]], KeySource]] = {
    "inline": inline_of,
    "lines": lines_of,
    "csv": csv_of,
    "ndjson": ndjson_of,
}

TRICKY_KEYS = [
    "user:12345",
    "user:*",
    "who?",
    "[abc]",
    "back\\slash",
    "ends-with-star*",
    "profil:zoë",
    "用户:42",
    "emoji:🎉",
    " padded ",
    'comma,and"quote',
]


@pytest.mark.parametrize("kind", SOURCES)
def test_sources_keep_glob_and_non_ascii_characters_as_they_are(kind: str) -> None:
    keys, rows, skipped = stream(SOURCES[kind](TRICKY_KEYS))

    assert keys == [key.encode("utf-8") for key in TRICKY_KEYS]
    assert (rows, skipped) == (len(TRICKY_KEYS), 0)


@pytest.mark.parametrize("kind", SOURCES)
@pytest.mark.parametrize(
    ("key", "kept"),
    [
        ("k" * MAX_KEY_BYTES, True),
        ("k" * (MAX_KEY_BYTES + 1), False),
        ("é" * (MAX_KEY_BYTES // 2), True),
        ("é" * (MAX_KEY_BYTES // 2) + "k", False),
    ],
    ids=["64KiB", "64KiB+1", "64KiB-utf8", "64KiB+1-utf8"],
)
def test_sources_skip_and_count_keys_over_64_kib(kind: str, key: str, kept: bool) -> None:
    keys, rows, skipped = stream(SOURCES[kind](["before", key, "after"]))

    expected = [b"before", key.encode(), b"after"] if kept else [b"before", b"after"]
    assert keys == expected
    assert (rows, skipped) == (3, 0 if kept else 1)


@pytest.mark.parametrize("kind", SOURCES)
def test_sources_skip_and_count_empty_keys(kind: str) -> None:
    keys, rows, skipped = stream(SOURCES[kind](["a", "", "b"]))

    assert (keys, rows, skipped) == ([b"a", b"b"], 3, 1)


@pytest.mark.parametrize("kind", ["csv", "ndjson"])
def test_sources_skip_and_count_rows_without_a_key(kind: str) -> None:
    keys, rows, skipped = stream(SOURCES[kind](["a", None, "b", None]))

    assert (keys, rows, skipped) == ([b"a", b"b"], 4, 2)


@pytest.mark.parametrize("kind", SOURCES)
@pytest.mark.parametrize(
    ("count", "batch_size", "sizes"),
    [(10, 3, [3, 3, 3, 1]), (6, 3, [3, 3]), (2, 5000, [2]), (1, 1, [1]), (0, 10, [])],
)
def test_sources_yield_batches_of_at_most_batch_size(
    kind: str, count: int, batch_size: int, sizes: list[int]
) -> None:
    source = SOURCES[kind]([f"k{number}" for number in range(count)])

    batches = list(source.raw_batches(batch_size=batch_size))

    assert [len(batch) for batch in batches] == sizes
    assert [value for batch in batches for value in batch] == [f"k{n}" for n in range(count)]


@pytest.mark.parametrize("kind", SOURCES)
def test_sources_refuse_a_batch_size_below_one(kind: str) -> None:
    with pytest.raises(ValueError, match="at least 1, got 0"):
        next(SOURCES[kind](["a"]).raw_batches(batch_size=0))


def test_key_stream_leaves_out_batches_with_nothing_to_write() -> None:
    batches = list(KeyStream(InlineSource(["", "", "a", ""]), batch_size=2))

    assert batches == [[b"a"]]


def test_inline_source_describes_its_size() -> None:
    assert InlineSource(["a", "b"]).describe() == "inline list of 2 keys"


@pytest.mark.parametrize(
    ("text", "rows"),
    [
        ("a\nb\n", ["a", "b"]),
        ("a\nb", ["a", "b"]),
        ("a\r\nb\r\n", ["a", "b"]),
        ("a\r\nb", ["a", "b"]),
        ("a\n\nb\n", ["a", "", "b"]),
        ("a\n\n", ["a", ""]),
        ("\n", [""]),
        ("", []),
        ("\ufeffa\nb\n", ["a", "b"]),
        (" a \n\tb\n", [" a ", "\tb"]),
        ("a\rb\n", ["a\rb"]),
        ("a\u2028b\n", ["a\u2028b"]),
    ],
    ids=[
        "lf",
        "no-final-newline",
        "crlf",
        "crlf-no-final-newline",
        "blank-line",
        "trailing-blank-line",
        "only-newline",
        "empty",
        "bom",
        "spaces-kept",
        "lone-cr-kept",
        "unicode-separator-kept",
    ],
)
def test_lines_source_reads_one_key_per_line(text: str, rows: list[str]) -> None:
    source = ConfigMapSource(text, fmt="lines", key_field=None, name=NAME)

    assert rows_of(source) == rows


def test_lines_source_counts_blank_lines_as_skipped() -> None:
    source = ConfigMapSource("a\r\n\r\nb\r\n\r\n", fmt="lines", key_field=None, name=NAME)

    assert stream(source) == ([b"a", b"b"], 4, 2)


def test_configmap_source_describes_itself_by_its_name() -> None:
    source = ConfigMapSource("a\n", fmt="lines", key_field=None, name=NAME)

    assert source.describe() == NAME


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_configmap_source_requires_a_key_field_for_structured_formats(fmt: str) -> None:
    with pytest.raises(SourceError, match=f"{NAME} is in {fmt} format, which needs a key field"):
        ConfigMapSource("id\n1\n", fmt=fmt, key_field=None, name=NAME)  # type: ignore[arg-type]


def test_configmap_source_rejects_an_unknown_format() -> None:
    with pytest.raises(SourceError, match="format 'xml'; use 'lines', 'csv' or 'ndjson'"):
        ConfigMapSource("<a/>", fmt="xml", key_field="k", name=NAME)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "rows"),
    [
        ("email,id\na@x.io,1\nb@x.io,2\n", ["a@x.io", "b@x.io"]),
        ("email,id\r\na@x.io,1\r\nb@x.io,2\r\n", ["a@x.io", "b@x.io"]),
        ("email,id\na@x.io,1\nb@x.io,2", ["a@x.io", "b@x.io"]),
        ('email,id\n"a,b",1\n"c""d",2\n', ["a,b", 'c"d']),
        ('email,id\n"multi\nline",1\n', ["multi\nline"]),
        ("email,id\na,1\n\n\nb,2\n\n", ["a", "b"]),
        ("email,id\n,1\n", [""]),
        ("\ufeffemail,id\na,1\n", ["a"]),
        ("email\n", []),
    ],
    ids=[
        "lf",
        "crlf",
        "no-final-newline",
        "quoted",
        "quoted-newline",
        "blank-rows-ignored",
        "empty-field",
        "bom",
        "header-only",
    ],
)
def test_csv_source_reads_the_key_column(text: str, rows: list[str]) -> None:
    source = ConfigMapSource(text, fmt="csv", key_field="email", name=NAME)

    assert rows_of(source) == rows


def test_csv_source_yields_none_for_rows_too_short_to_hold_the_key() -> None:
    source = ConfigMapSource("id,email\n1,a\n2\n3,b\n", fmt="csv", key_field="email", name=NAME)

    assert rows_of(source) == ["a", None, "b"]


def test_csv_source_rejects_missing_key_column_before_any_row() -> None:
    source = ConfigMapSource("id,Email\n1,a\n", fmt="csv", key_field="email", name=NAME)

    with pytest.raises(SourceError) as caught:
        next(source.raw_batches(batch_size=1))

    message = str(caught.value)
    assert f"column 'email' not found in the header of {NAME}" in message
    assert "the columns are: 'id', 'Email'" in message


def test_csv_source_rejects_text_without_a_header() -> None:
    source = ConfigMapSource("", fmt="csv", key_field="email", name=NAME)

    with pytest.raises(SourceError, match=f"{NAME} is empty; a CSV source needs a header row"):
        rows_of(source)


@pytest.mark.parametrize(
    ("text", "line"),
    [('email\na\n"b\n', 3), ('email\na\n"b"c\n', 3), ("email\n" + "x" * 200_000 + "\n", 2)],
    ids=["unterminated-quote", "stray-quote", "field-over-csv-limit"],
)
def test_csv_source_rejects_malformed_csv_naming_the_line(text: str, line: int) -> None:
    source = ConfigMapSource(text, fmt="csv", key_field="email", name=NAME)

    with pytest.raises(SourceError, match=f"{NAME} is not valid CSV at line {line}: "):
        rows_of(source)


@pytest.mark.parametrize(
    ("text", "rows"),
    [
        ('{"key": "a"}\n{"key": "b"}\n', ["a", "b"]),
        ('{"key": "a"}\r\n{"key": "b"}', ["a", "b"]),
        ('\n{"key": "a"}\n  \n\n{"key": "b"}\n\n', ["a", "b"]),
        ('{"key": "a"}\n{"other": 1}\n{"key": null}\n', ["a", None, None]),
        ('{"key": 12345}\n', [12345]),
        ('\ufeff{"key": "a"}\n', ["a"]),
        ('{"key": "a\\u2028b\\nc"}\n', ["a\u2028b\nc"]),
    ],
    ids=["lf", "crlf", "blank-lines-ignored", "missing-later", "number", "bom", "escapes"],
)
def test_ndjson_source_reads_the_key_field(text: str, rows: list[object]) -> None:
    source = ConfigMapSource(text, fmt="ndjson", key_field="key", name=NAME)

    assert rows_of(source) == rows


def test_ndjson_source_rejects_missing_key_field_in_first_record_before_any_row() -> None:
    text = '\n{"id": 1, "email": "a"}\n{"key": "b"}\n'
    source = ConfigMapSource(text, fmt="ndjson", key_field="key", name=NAME)

    with pytest.raises(SourceError) as caught:
        next(source.raw_batches(batch_size=1))

    message = str(caught.value)
    assert f"field 'key' not found in the first record of {NAME} (line 2)" in message
    assert "its fields are: 'id', 'email'" in message


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        ('{"key": "c"', "is not valid JSON: "),
        ("not json", "is not valid JSON: "),
        ('["c"]', "holds a JSON array, not an object"),
        ('"c"', "holds a JSON string, not an object"),
        ("42", "holds a JSON number, not an object"),
        ("null", "holds a JSON null, not an object"),
        ("true", "holds a JSON boolean, not an object"),
    ],
)
def test_ndjson_source_rejects_a_bad_line_naming_its_number(bad_line: str, problem: str) -> None:
    text = f'{{"key": "a"}}\n\n{bad_line}\n{{"key": "b"}}\n'
    source = ConfigMapSource(text, fmt="ndjson", key_field="key", name=NAME)

    with pytest.raises(SourceError, match=f"line 3 of {NAME} {problem}"):
        rows_of(source)


def test_ndjson_source_streams_rows_before_reaching_a_bad_line() -> None:
    text = '{"key": "a"}\n{"key": "b"}\n{broken\n'
    batches = ConfigMapSource(text, fmt="ndjson", key_field="key", name=NAME).raw_batches(
        batch_size=2
    )

    assert next(batches) == ["a", "b"]
    with pytest.raises(SourceError, match="line 3"):
        next(batches)


def test_values_that_are_not_scalars_are_skipped_not_stringified() -> None:
    raw: list[object] = [{"x": 1}, ["a"], True, False, 5, 1.5, Decimal("1.50"), "k",
                         UUID(int=1), b"raw"]  # fmt: skip

    assert encode_keys(raw) == [
        b"5", b"1.5", b"1.50", b"k", b"00000000-0000-0000-0000-000000000001", b"raw",
    ]  # fmt: skip
