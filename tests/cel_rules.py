"""The CEL rules of a CRD schema, evaluated as the API server would.

Shared by the CRD tests and the example tests: ``x-kubernetes-validations``
rules run with ``self`` bound to the value at their level (cel-python).
"""

from __future__ import annotations

from typing import Any

import celpy


def broken_rules(schema: dict[str, Any], value: Any) -> list[str]:
    """Messages of the CEL rules ``value`` breaks, at every level."""
    broken = []
    for rule in schema.get("x-kubernetes-validations", []):
        environment = celpy.Environment()
        program = environment.program(environment.compile(rule["rule"]))
        if not program.evaluate({"self": celpy.json_to_cel(value)}):
            broken.append(rule["message"])
    for name, child in schema.get("properties", {}).items():
        if isinstance(value, dict) and name in value:
            broken += broken_rules(child, value[name])
    if "items" in schema and isinstance(value, list):
        for item in value:
            broken += broken_rules(schema["items"], item)
    return broken
