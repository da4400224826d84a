"""Validate TGI request and response bodies against TGI's own OpenAPI spec.

The spec is `tests/fixtures/tgi_openapi.json`, a copy of `docs/openapi.json` from
huggingface/text-generation-inference (v3.3.x). utoipa writes it as OpenAPI 3.0 but uses the
JSON-Schema-2020 form of `exclusiveMinimum` (a number), so the component schemas are checked
with a Draft 2020-12 validator after two faithful rewrites:

- `nullable: true` becomes "or null" (OpenAPI 3.0's spelling of it);
- `GrammarType` also accepts `json_object`, the serde alias real TGI takes for `json`
  (`router/src/lib.rs`, used by `huggingface_hub` for OpenAI-style `json_schema` formats);
- `FunctionDefinition` takes `parameters` in place of `arguments` (another serde alias there:
  OpenAI-style tool definitions send `parameters`).

`example` / `format` / `discriminator` keywords are annotations and are ignored.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "tgi_openapi.json"
_ROOT_URI = "urn:tgi-openapi"


class SpecViolationError(AssertionError):
    """A body does not match TGI's OpenAPI schema."""


def _rewrite(node: Any) -> Any:
    if isinstance(node, list):
        return [_rewrite(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _rewrite(value) for key, value in node.items()}
    out.pop("example", None)
    out.pop("discriminator", None)
    if isinstance(out.get("default"), str) and out["default"] == "null":
        out.pop("default")
    if out.pop("nullable", False):
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            return {"anyOf": [{"type": "null"}, out]}
    return out


@cache
def _spec() -> dict[str, Any]:
    raw = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    spec: dict[str, Any] = _rewrite(copy.deepcopy(raw))
    grammar = spec["components"]["schemas"]["GrammarType"]["oneOf"][0]
    grammar["properties"]["type"]["enum"] = ["json", "json_object"]
    function = spec["components"]["schemas"]["FunctionDefinition"]
    function["required"] = ["name"]
    function["properties"]["parameters"] = {}
    function["anyOf"] = [{"required": ["arguments"]}, {"required": ["parameters"]}]
    return spec


@cache
def _validator(schema_name: str) -> Draft202012Validator:
    spec = _spec()
    if schema_name not in spec["components"]["schemas"]:
        msg = f"No component schema {schema_name!r} in {SPEC_PATH.name}"
        raise KeyError(msg)
    registry: Registry[Any] = Registry().with_resource(
        _ROOT_URI, Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    return Draft202012Validator(
        {"$ref": f"{_ROOT_URI}#/components/schemas/{schema_name}"}, registry=registry
    )


def schema_errors(schema_name: str, instance: Any) -> list[str]:
    """Every way `instance` breaks the component schema `schema_name` (empty: valid)."""
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in _validator(schema_name).iter_errors(instance)
    ]


def check(schema_name: str, instance: Any) -> None:
    """Raise `SpecViolationError` if `instance` does not match `schema_name`."""
    errors = schema_errors(schema_name, instance)
    if errors:
        msg = f"{schema_name}: " + "; ".join(errors)
        raise SpecViolationError(msg)


def spec_paths() -> list[str]:
    """The routes the spec declares."""
    return sorted(_spec()["paths"])
