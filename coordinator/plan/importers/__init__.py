"""Import plans written for people into coord plan YAML (``coord import``, docs/design.md §15).

Who uses it: ``coordinator.cli.import_cmd`` calls :func:`import_plan`, writes :meth:`ImportResult.yaml_text` and
validates it with the plan loader (with the template checks, ``prompts.validate``). Everything here is a pure
function of the files read: nothing is written, nothing is run, and nothing imports the prompt layer (whether a
kind has a template is asked through ``has_template``).

Three formats (docs/design.md §15), one module each, the rules in its docstring:

``markdown`` -- the phase-plan folders of vybestack/llxprt-code (``project-plans/<slug>/``, NOTES §4-§7) in every
  layout: numbered phase files (``markdown_plans``: ``plan/NN-*.md``, ``tasks/NN-*.md``, ``phaseN.md``) or none
  (``single_file``: phase sections, a phase table, topic files beside an overview, or one file with no phases).
  Both read files with ``markdown_doc`` (markdown-it-py), verify entries with ``verify_blocks`` (bash blocks as
  whole scripts: ``shell_scripts``, ``expectations``) and kinds with ``kinds`` (title, text, file name).

``spec-kit`` (``speckit``) -- GitHub spec-kit ``tasks.md`` (NOTES §11.1).

``taskmaster`` (``taskmaster``) -- claude-task-master ``tasks.json`` (NOTES §11.2; format only).

What they share (the result, the YAML output, reading files, the plan document) is in ``common``; this module
picks the importer (:func:`detect_format`) and runs it (:func:`import_plan`).

What the importer could not understand is returned as warnings, one line each, never guessed silently; what it
cannot import at all raises :class:`ImportFailed` naming the file (and line).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from coordinator.plan.importers.common import (
    FORMAT_NAMES,
    FORMATS,
    ImportFailed,
    ImportResult,
    SourceProgress,
    dump_yaml,
    rel_path,
)
from coordinator.plan.importers.markdown_plans import PHASE_FOLDERS, MarkdownImporter, phase_files
from coordinator.plan.importers.single_file import UnnumberedImporter
from coordinator.plan.importers.speckit import import_speckit
from coordinator.plan.importers.taskmaster import import_taskmaster, taskmaster_file
from coordinator.plan.model import BUILTIN_KINDS

__all__ = [
    "FORMATS",
    "FORMAT_NAMES",
    "ImportFailed",
    "ImportResult",
    "SourceProgress",
    "detect_format",
    "dump_yaml",
    "import_plan",
]


def detect_format(source: Path) -> str:
    """Say which importer reads ``source`` (a folder or a file).

    Raises:
        ImportFailed: nothing importable was found.
    """
    if source.is_file():
        if source.suffix == ".json":
            return "taskmaster"
        if source.suffix == ".md":
            return "spec-kit" if source.name == "tasks.md" else "markdown"
        raise ImportFailed(f"{source}: not a plan folder, a Markdown plan, tasks.md or tasks.json")
    if not source.is_dir():
        raise ImportFailed(f"{source}: no such folder or file")
    if phase_files(source):
        return "markdown"
    if (source / "tasks.md").is_file():
        return "spec-kit"
    if taskmaster_file(source) is not None:
        return "taskmaster"
    if any(path.is_file() for folder in (source, source / "plan") for path in folder.glob("*.md")):
        return "markdown"
    raise ImportFailed(
        f"{source}: no plan found: the folder holds no Markdown file (a phase plan), tasks.md (spec-kit) or "
        "tasks.json (Taskmaster)"
    )


def import_plan(
    source: Path,
    workspace: Path,
    *,
    fmt: str = "auto",
    tag: str | None = None,
    plan_id: str | None = None,
    has_template: Callable[[str], bool] | None = None,
) -> ImportResult:
    """Convert a plan folder (or a spec-kit/Taskmaster file) into a coord plan document.

    Args:
        source: absolute path of the folder or file; must be inside ``workspace``.
        workspace: absolute workspace root (paths in the document are relative to it).
        fmt: ``auto`` or one of :data:`FORMATS`.
        tag: Taskmaster tag (default ``master``, or the only tag).
        plan_id: use this plan id instead of the one found in the files.
        has_template: tells whether a prompt template exists for a kind; default: the built-in kinds only.

    Returns:
        The document and its warnings.

    Raises:
        ImportFailed: the source is missing, outside the workspace, unreadable or holds no phases.
    """
    workspace = workspace.resolve()
    source = source.resolve()
    if not source.is_relative_to(workspace):
        raise ImportFailed(f"{source}: outside the workspace {workspace}")
    fmt = detect_format(source) if fmt == "auto" else fmt
    if fmt not in FORMATS:
        raise ImportFailed(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    templates = has_template or (lambda kind: kind in BUILTIN_KINDS)
    if fmt == "markdown":
        if source.is_dir() and source.name in PHASE_FOLDERS and source.parent.is_relative_to(workspace) \
                and source != workspace and phase_files(source.parent):
            # `project-plans/<slug>/plan` names the phase files; the plan (markers, reports) is its parent.
            source = source.parent
        if source.is_dir() and phase_files(source):
            result = MarkdownImporter(source, workspace, templates).run()
        else:
            result = UnnumberedImporter(source, workspace, templates).run()
    elif fmt == "spec-kit":
        result = import_speckit(source / "tasks.md" if source.is_dir() else source, workspace)
    else:
        found = taskmaster_file(source) if source.is_dir() else source
        if found is None:
            raise ImportFailed(f"{rel_path(source, workspace)}: no tasks.json found")
        result = import_taskmaster(found, workspace, tag)
    if plan_id is not None:
        result.document["plan"] = plan_id
        result = ImportResult(result.format, plan_id, result.source, result.document, result.warnings,
                              result.progress)
    return result
