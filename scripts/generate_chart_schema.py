"""Generate the chart's values.schema.json from its values.yaml.

values.yaml stays the one place where a value is declared and explained: the
type of each key is inferred from its default and its description is the
``# --`` comment above it (helm-docs style). A type in parentheses right after
``# --`` overrides the inferred one where a default cannot tell: ``(list of
string)`` for an empty list, ``(object)`` for a free-form map such as
annotations or resources, whose content the schema then leaves to Kubernetes.
Maps with a default content get ``additionalProperties: false``, so that a
misspelt key fails ``helm install`` instead of being ignored.

Limitations: the comment scanner knows only the subset of YAML values.yaml
uses (block maps, one key per line, lists of scalars); enumerations and ranges
are checked by the chart's templates, not here.

    python scripts/generate_chart_schema.py          # rewrite the schema
    python scripts/generate_chart_schema.py --check  # exit 1 when it drifted
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "redis-audiences"
DRAFT = "http://json-schema.org/draft-07/schema#"

KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(\s|$)")
DOC_START = re.compile(r"^\s*# --\s?(?:\((?P<type>[a-z ]+)\)\s*)?(?P<text>.*)$")
DOC_MORE = re.compile(r"^\s*#\s?(?P<text>.*)$")
SCALARS = {bool: "boolean", int: "integer", float: "number", str: "string"}
DECLARED = {
    "string": {"type": "string"},
    "int": {"type": "integer"},
    "bool": {"type": "boolean"},
    "number": {"type": "number"},
    "object": {"type": "object"},
    "list": {"type": "array"},
    "list of string": {"type": "array", "items": {"type": "string"}},
    "list of object": {"type": "array", "items": {"type": "object"}},
}

Docs = dict[tuple[str, ...], tuple[str, str | None]]


class SchemaError(Exception):
    """values.yaml cannot be turned into a schema; the message says where."""


def read_docs(text: str) -> Docs:
    """Map each key path to its ``# --`` description and declared type."""
    docs: Docs = {}
    stack: list[tuple[int, str]] = []
    pending: tuple[list[str], str | None] | None = None

    for line in text.splitlines():
        if start := DOC_START.match(line):
            pending = ([start["text"].strip()], start["type"])
        elif pending and (more := DOC_MORE.match(line)):
            pending[0].append(more["text"].strip())
        elif key := KEY_LINE.match(line):
            indent = len(key["indent"])
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, key["key"]))
            if pending:
                docs[tuple(name for _, name in stack)] = (" ".join(pending[0]), pending[1])
            pending = None
        elif not line.strip():
            pending = None
    return docs


def schema_for(value: Any, path: tuple[str, ...], docs: Docs) -> dict[str, Any]:
    """The schema of one value: declared, or inferred from its default."""
    if path not in docs:
        raise SchemaError(f"values.yaml key {'.'.join(path)} has no '# --' comment.")
    description, declared = docs[path]
    if declared is not None and declared not in DECLARED:
        raise SchemaError(
            f"values.yaml key {'.'.join(path)} declares type '({declared})'; "
            f"use one of {', '.join(sorted(DECLARED))}."
        )

    if declared is not None:
        schema = dict(DECLARED[declared])
    elif isinstance(value, dict) and value:
        schema = object_schema(value, path, docs)
    else:
        schema = inferred(value, path)
    return {"description": description, **schema}


def object_schema(values: dict[str, Any], path: tuple[str, ...], docs: Docs) -> dict[str, Any]:
    """A map with known keys: each described, no others allowed."""
    properties = {key: schema_for(value, (*path, key), docs) for key, value in values.items()}
    return {"type": "object", "additionalProperties": False, "properties": properties}


def inferred(value: Any, path: tuple[str, ...]) -> dict[str, Any]:
    if isinstance(value, dict):
        return {"type": "object"}
    if isinstance(value, list):
        kinds = {SCALARS.get(type(item), "object") for item in value}
        if len(kinds) > 1:
            raise SchemaError(f"values.yaml key {'.'.join(path)} mixes item types {kinds}.")
        return {"type": "array", **({"items": {"type": kinds.pop()}} if kinds else {})}
    if type(value) not in SCALARS:
        raise SchemaError(
            f"values.yaml key {'.'.join(path)} has no default to infer a type from; "
            "declare one with '# -- (type) ...'."
        )
    return {"type": SCALARS[type(value)]}


def generate(values_yaml: str) -> dict[str, Any]:
    """The whole values.schema.json document for a values.yaml text."""
    values = yaml.safe_load(values_yaml)
    docs = read_docs(values_yaml)
    properties = {key: schema_for(value, (key,), docs) for key, value in values.items()}

    # NB: Helm hands every chart a `global` map; it must pass the schema.
    properties["global"] = {"description": "Values shared with subcharts.", "type": "object"}
    return {
        "$schema": DRAFT,
        "title": "Values of the redis-audiences chart",
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }


def render(values_yaml: str) -> str:
    return json.dumps(generate(values_yaml), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    values_yaml = (CHART / "values.yaml").read_text()
    schema_path = CHART / "values.schema.json"
    try:
        wanted = render(values_yaml)
    except SchemaError as error:
        print(error, file=sys.stderr)
        return 2

    if argv == ["--check"]:
        if not schema_path.exists() or schema_path.read_text() != wanted:
            print(f"{schema_path} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    schema_path.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
