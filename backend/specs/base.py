"""What every spec shares: immutability, strict fields, one error type, canonical JSON and a hash."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError


class SpecError(ValueError):
    """A spec that cannot be run. The message names the offending field, e.g. `data.shifts.0.block`."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class Spec(BaseModel):
    """Base of every spec: immutable, unknown fields rejected (a typo is an error, not a default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


S = TypeVar("S", bound=BaseModel)


def parse(cls: type[S], obj: Any, prefix: str = "") -> S:
    """Validate `obj` (a dict, or a JSON string) as `cls`; errors become one SpecError naming fields."""
    try:
        if isinstance(obj, (str, bytes)):
            return cls.model_validate_json(obj)
        return cls.model_validate(obj)
    except ValidationError as exc:
        raise spec_error(exc, prefix) from None


def spec_error(exc: ValidationError, prefix: str = "") -> SpecError:
    lines, fields = [], []
    for err in exc.errors():
        # Drop the discriminator tags pydantic inserts into union locations (e.g. 'block_shuffle').
        loc = [str(p) for p in err["loc"] if p not in _union_tags()]
        msg = err["msg"].removeprefix("Value error, ")
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, SpecError) and cause.field:
            loc.append(cause.field)
            msg = str(cause).split(": ", 1)[1]
        field = ".".join(([prefix] if prefix else []) + loc) or "spec"
        fields.append(field)
        lines.append(f"{field}: {msg}")
    return SpecError("; ".join(lines) if len(lines) > 1 else lines[0].split(": ", 1)[1],
                     field=None if len(lines) > 1 else fields[0])


# Pydantic puts the discriminator value of a union member into error locations
# (`source.torchvision.root`); field names read better without it.@lru_cache(maxsize=1)
def _union_tags() -> frozenset[str]:
    """Pydantic puts the discriminator value of a union member into error locations
    (`source.torchvision.root`); field names read better without it."""
    from backend.specs import UNIONS

    return frozenset(
        tag for union in UNIONS for member in union.__origin__.__args__
        for name in ("kind", "arch") if name in member.model_fields
        for tag in member.model_fields[name].annotation.__args__
    )


def set_field(tree: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path (`train.epochs`) in a spec's dict form, creating groups as needed;
    the result is validated by `parse` like any other input."""
    *parents, leaf = path.split(".")
    node = tree
    for key in parents:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise SpecError(f"{key!r} is not a group of fields", field=path)
        node = child
    node[leaf] = value


def canonical_json(spec: BaseModel) -> str:
    """One text per spec: defaults filled in, keys sorted, no whitespace."""
    return json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def spec_hash(spec: BaseModel) -> str:
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()
