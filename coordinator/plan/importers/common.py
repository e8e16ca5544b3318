"""What every importer shares: the result type, the YAML output, reading a source file and the plan document.

Who uses it: each importer of ``plan.importers`` (``markdown_plans``, ``speckit``, ``taskmaster``) reads its files
with ``read_source``, names them with ``rel_path`` and builds its result with ``plan_document``; the package's
``__init__`` re-exports ``ImportResult``, ``ImportFailed``, ``SourceProgress``, ``FORMAT_NAMES`` and ``dump_yaml``
for ``cli.import_cmd``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from coordinator.errors import UsageError

FORMATS = ("markdown", "spec-kit", "taskmaster")
FORMAT_NAMES = {
    "markdown": "markdown phase plan", "spec-kit": "spec-kit tasks.md", "taskmaster": "Taskmaster tasks.json",
}

MAX_SOURCE_BYTES = 4 * 1024 * 1024
"""Largest source file read (the plan loader refuses plan files over 1 MiB anyway)."""


class ImportFailed(UsageError):
    """The source cannot be imported; the message is one line naming the file (and line where known)."""


@dataclass(frozen=True)
class SourceProgress:
    """Completion as the source itself records it (spec-kit checkboxes, Taskmaster ``status``).

    Attributes:
        done: the source says the phase is finished.
        detail: one line saying where that was read, e.g. ``3/3 tasks checked in specs/001-albums/tasks.md``.
    """

    done: bool
    detail: str


@dataclass(frozen=True)
class ImportResult:
    """A converted plan: the document to write, and everything the user should know about it.

    Attributes:
        format: one of :data:`FORMATS`.
        plan_id: the plan id written into the document.
        source: the imported folder or file, workspace-relative.
        document: the plan document (plain dicts, lists and strings), ready for YAML.
        warnings: what could not be understood or was decided by a documented default, one line each.
        progress: per phase id, the source's own completion record; None for markdown plans, whose progress is
            judged from their completion markers and reports by coord's checks.
    """

    format: str
    plan_id: str
    source: str
    document: dict[str, Any]
    warnings: tuple[str, ...] = ()
    progress: dict[str, SourceProgress] | None = None

    @property
    def phase_ids(self) -> list[str]:
        return [phase["id"] for phase in self.document["phases"]]

    def yaml_text(self) -> str:
        """The plan file's text: a comment header naming the source and the warnings, then the document."""
        count = len(self.document["phases"])
        header = [
            f"# Imported by `coord import` from {self.source} ({FORMAT_NAMES[self.format]}): "
            f"{count} phase{'s' if count != 1 else ''}.",
        ]
        if self.warnings:
            header.append("# Import warnings:")
            header.extend(f"#   - {_one_line(warning)}" for warning in self.warnings)
        return "\n".join(header) + "\n" + dump_yaml(self.document)


# --------------------------------------------------------------------------------------------------------------
# YAML output


class _PlanDumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that writes multi-line strings as literal blocks, so instructions stay readable."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # PyYAML falls back to a quoted style by itself when a block cannot hold the text (e.g. trailing spaces).
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_PlanDumper.add_representer(str, _represent_str)


def dump_yaml(document: dict[str, Any]) -> str:
    """Serialize a plan document with PyYAML's safe dumper (never by hand); key order is kept."""
    # A wide line limit: a folded shell command reads back the same but no longer looks like what was written.
    return yaml.dump(document, Dumper=_PlanDumper, sort_keys=False, allow_unicode=True, width=4096,
                     default_flow_style=False)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------------------------
# Reading files


def rel_path(path: Path, workspace: Path) -> str:
    """Workspace-relative POSIX path ('.' for the workspace itself).

    Raises:
        ImportFailed: the path resolves outside the workspace (a symlink leaving it).
    """
    resolved = path.resolve()
    if not resolved.is_relative_to(workspace):
        raise ImportFailed(f"{path}: resolves outside the workspace {workspace}")
    return resolved.relative_to(workspace).as_posix() or "."


def read_source(path: Path, workspace: Path) -> str:
    """The text of a source file (at most ``MAX_SOURCE_BYTES``, UTF-8, a BOM removed); ``ImportFailed`` otherwise."""
    shown = rel_path(path, workspace)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SOURCE_BYTES + 1)
    except OSError as exc:
        raise ImportFailed(f"{shown}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_SOURCE_BYTES:
        raise ImportFailed(f"{shown}: larger than {MAX_SOURCE_BYTES // (1024 * 1024)} MiB")
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise ImportFailed(f"{shown}: not UTF-8 (byte offset {exc.start})") from None


# --------------------------------------------------------------------------------------------------------------
# The plan document


def plan_document(plan_id: str, title: str, folder: Path, base: str,
                   phases: list[dict[str, Any]]) -> tuple[dict[str, Any], str | None]:
    """The plan YAML document every importer writes, and the warning to give when the report check is off.

    Most real plans keep no ``reports/`` folder: the report check is then switched off (never silently).
    """
    document: dict[str, Any] = {
        "plan": plan_id,
        "title": title,
        "workdir": ".",
        "agent": "codex",
        "artifacts": _artifacts(base),
    }
    warning = None
    if not (folder / "reports").is_dir():
        document["checks"] = {"report": False}
        warning = (f"{base} has no reports/ folder: the report check is off for this plan (workers are still "
                   "asked for a report; only the completion marker and verify commands judge)")
    document["phases"] = phases
    return document, warning


def _artifacts(base: str) -> dict[str, str]:
    if "{" in base or "}" in base:
        raise ImportFailed(f"{base}: a folder name with braces cannot be used in artifact paths")
    prefix = "" if base == "." else f"{base}/"
    return {
        "report": prefix + "reports/{{ phase.id }}-worker.md",
        "completed": prefix + ".completed/{{ phase.id }}.md",
    }


def safe_id(name: str) -> str:
    """A plan id made from a name: characters outside ``[A-Za-z0-9._-]`` become ``-``."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._")
    cleaned = re.sub(r"\.{2,}", ".", cleaned)
    return cleaned[:128] or "imported-plan"
