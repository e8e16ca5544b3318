"""A run's plan as it was when a person started the run: the loaded ``Plan`` (instructions files read in) and the
workspace templates it renders, as JSON for the store, with the hash that tells a later version apart.

Who uses it: ``coord run`` records a snapshot when it starts (``state.store.Store.record_snapshot``); the engine
renders prompts and runs verification from it; a stand-alone ``coord remediate`` judges by it, whatever a worker
did to the plan file or the templates since.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass
from typing import Any, TypeVar, Union

from coordinator.plan.model import Plan

T = TypeVar("T")


@dataclass(frozen=True)
class PlanSnapshot:
    """The plan and templates a run judges by.

    Attributes:
        plan: the loaded plan.
        templates: the workspace's ``templates/*.j2`` by file name, as read at the start (the packaged templates
            are coord's own and need no copy).
        sha256: hash of the plan file's bytes and those templates (hex).
    """

    plan: Plan
    templates: dict[str, str]
    sha256: str

    def to_json(self) -> str:
        return json.dumps({"plan": dataclasses.asdict(self.plan), "templates": self.templates,
                           "sha256": self.sha256}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PlanSnapshot:
        """The snapshot ``to_json`` wrote.

        Raises:
            ValueError: the text is not such a snapshot (a store written by another coord version).
        """
        try:
            data = json.loads(text)
            return cls(plan=_build(Plan, data["plan"]), templates=dict(data["templates"]),
                       sha256=str(data["sha256"]))
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a plan snapshot: {exc}") from exc


def snapshot_hash(plan_bytes: bytes, templates: dict[str, str]) -> str:
    """The hash of a plan file and the workspace templates next to it (sha256, hex)."""
    digest = hashlib.sha256(plan_bytes)
    for name in sorted(templates):
        digest.update(b"\0" + name.encode() + b"\0" + templates[name].encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def changed_verification(old: Plan, new: Plan) -> list[str]:
    """Ids of the phases of ``new`` whose verification commands differ from ``old``'s (new phases included)."""
    before = {phase.id: phase.verify for phase in old.phases}
    return [phase.id for phase in new.phases if before.get(phase.id) != phase.verify]


def _build(kind: Any, value: Any) -> Any:
    """Rebuild a value of type ``kind`` (a model dataclass, tuple, dict, Optional or plain type) from JSON."""
    origin = typing.get_origin(kind)
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        hints = typing.get_type_hints(kind)
        return kind(**{field.name: _build(hints[field.name], value[field.name])
                       for field in dataclasses.fields(kind) if field.name in value})
    if origin in (Union, types.UnionType):
        if value is None:
            return None
        options = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return _build(options[0], value)
    if origin is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_build(args[0], item) for item in value)
        return tuple(_build(arg, item) for arg, item in zip(args, value, strict=True))
    if origin is dict:
        key_type, value_type = typing.get_args(kind)
        return {key: _build(value_type, item) for key, item in value.items()}
    if origin is typing.Literal:
        return value
    return value
