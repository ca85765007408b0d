"""What every spec shares: immutability, strict fields, one error type, canonical JSON and a hash."""

from __future__ import annotations

import hashlib
import json
import numbers
from functools import lru_cache
from collections.abc import Iterator
from typing import Annotated, Any, Mapping, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_serializer


class SpecError(ValueError):
    """A spec that cannot be run. The message names the offending field, e.g. `data.shifts.0.block`."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class Spec(BaseModel):
    """Base of every spec: immutable, unknown fields rejected (a typo is an error, not a default), and
    no NaN or infinity in a number (a rotation by NaN degrees would train on blank images)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_serializer(mode="wrap")
    def _without_late_defaults(self, handler: Any) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name, info in type(self).model_fields.items():
                if (info.json_schema_extra or {}).get("late") and name in data and getattr(self, name) == info.default:
                    del data[name]
        return data


def late_field(default: Any, description: str, **constraints: Any) -> Any:
    """A field added to a job spec after jobs of it were stored: left out of the canonical JSON (and
    so of the content hash) while at its default, so every stored job keeps its hash and its results
    keep being reused."""
    return Field(default, description=description, json_schema_extra={"late": True}, **constraints)


# A random seed. Torch refuses one beyond 64 bits and numpy's SeedSequence a negative one, both on a
# worker, after the study was queued: so every seed field takes 0 <= seed < 2**32, refused at parse.
# A study's seeds stay below 2**31: its jobs' seeds add offsets (transfers + 1000, basins runs + 10,000 r).
def _whole_number(value: Any) -> int:
    """A count, width, depth, unit number or class id as typed: a whole number, never what lax parsing
    would turn into one (`true` into 1, "8" into 8, 8.0 into 8), so a typo is refused at parse, the
    field named. numpy integers pass, stored as plain ints (the canonical JSON is unchanged)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SpecError(f"expected a whole number, got {value!r}")
    return int(value)


Whole = Annotated[int, BeforeValidator(_whole_number)]
Seed = Annotated[int, Field(ge=0, lt=2**32)]
StudySeed = Annotated[int, Field(ge=0, lt=2**31)]

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


@lru_cache(maxsize=1)
def _union_tags() -> frozenset[str]:
    """Pydantic puts the discriminator value of a union member into error locations
    (`source.torchvision.root`); field names read better without it."""
    from backend.specs import UNIONS

    return frozenset(
        tag for union in UNIONS for member in union.__origin__.__args__
        for name in ("kind", "arch") if name in member.model_fields
        for tag in member.model_fields[name].annotation.__args__
    )


def spec_parts(spec: Any, kinds: type | tuple[type, ...], where: str = "") -> Iterator[tuple[str, Any]]:
    """(field path, part) of every part of `spec` that is one of `kinds`, at any depth."""
    if isinstance(spec, kinds):
        yield where.lstrip("."), spec
    elif isinstance(spec, BaseModel):
        for name in type(spec).model_fields:
            yield from spec_parts(getattr(spec, name), kinds, f"{where}.{name}")
    elif isinstance(spec, (list, tuple)):
        for i, item in enumerate(spec):
            yield from spec_parts(item, kinds, f"{where}.{i}")


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


# Keys that change what a job computes but not what it costs: the seed, the class half.
COST_FREE_KEYS = frozenset({"seed", "half"})


def shape_hash(spec: BaseModel | dict[str, Any], shapes: Mapping[str, str] | None = None) -> str:
    """The hash of a spec with every key in COST_FREE_KEYS removed, at any depth: jobs that differ
    only in seed or half share a shape, so one's run time estimates the other's. `shapes` maps spec
    hashes to shapes: a spec naming another job by its hash (a probe names its networks) counts that
    job by its shape, so the seed-0 and seed-1 probes of one treatment share a shape too."""
    tree = spec.model_dump(mode="json") if isinstance(spec, BaseModel) else spec
    text = json.dumps(_cost_relevant(tree, shapes or {}), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _cost_relevant(tree: Any, shapes: Mapping[str, str]) -> Any:
    if isinstance(tree, dict):
        return {k: _cost_relevant(v, shapes) for k, v in tree.items() if k not in COST_FREE_KEYS}
    if isinstance(tree, list):
        return [_cost_relevant(v, shapes) for v in tree]
    if isinstance(tree, str):
        return shapes.get(tree, tree)
    return tree
