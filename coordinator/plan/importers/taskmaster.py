"""The Taskmaster importer: claude-task-master ``tasks.json`` (docs/design.md §15; format only).

Who uses it: ``plan.importers.import_plan`` calls ``import_taskmaster`` for ``--format taskmaster`` (a
``tasks.json``, or a folder where ``taskmaster_file`` finds one; ``detect_format`` uses that too). Each task of the
chosen tag (``master`` by default) is a phase ``T<id>`` with its dependencies; ``status: done`` is the progress
record; subtasks stay in their task's instructions as a checklist. The plan id is ``<project>-<tag>``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from coordinator.plan.importers.common import (
    ImportFailed,
    ImportResult,
    SourceProgress,
    plan_document,
    read_source,
    rel_path,
    safe_id,
)
from coordinator.plan.importers.kinds import detect_kind
from coordinator.plan.model import BUILTIN_KINDS


def taskmaster_file(folder: Path) -> Path | None:
    for candidate in (folder / ".taskmaster" / "tasks" / "tasks.json", folder / "tasks" / "tasks.json",
                      folder / "tasks.json"):
        if candidate.is_file():
            return candidate
    return None


def _taskmaster_tasks(data: Any, tag: str | None, shown: str) -> tuple[str, list[Any], dict[str, Any]]:
    """Pick the tag: ``{"<tag>": {"tasks": […], "metadata": {…}}}``, or the untagged ``{"tasks": […]}``."""
    if not isinstance(data, dict):
        raise ImportFailed(f"{shown}: expected a JSON object of tags ({{\"master\": {{\"tasks\": [...]}}}})")
    if isinstance(data.get("tasks"), list):
        if tag not in (None, "master"):
            raise ImportFailed(f"{shown}: untagged tasks.json has no tag {tag!r}")
        return "master", data["tasks"], data.get("metadata") or {}
    tags = {name: value for name, value in data.items() if isinstance(value, dict) and
            isinstance(value.get("tasks"), list)}
    if not tags:
        raise ImportFailed(f"{shown}: no tag holds a \"tasks\" list")
    if tag is None:
        tag = "master" if "master" in tags else next(iter(tags)) if len(tags) == 1 else None
        if tag is None:
            raise ImportFailed(f"{shown}: several tags ({', '.join(tags)}) and none is 'master'; choose with --tag")
    if tag not in tags:
        raise ImportFailed(f"{shown}: no tag {tag!r} (tags: {', '.join(tags)})")
    return tag, tags[tag]["tasks"], tags[tag].get("metadata") or {}


def import_taskmaster(path: Path, workspace: Path, tag: str | None) -> ImportResult:
    """Import a claude-task-master ``tasks.json``: one phase ``T<id>`` per task of one tag (NOTES §11.2)."""
    shown = rel_path(path, workspace)
    try:
        data = json.loads(read_source(path, workspace))
    except json.JSONDecodeError as exc:
        raise ImportFailed(f"{shown}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    tag, tasks, metadata = _taskmaster_tasks(data, tag, shown)
    warnings: list[str] = []
    ids: dict[str, str] = {}
    for position, task in enumerate(tasks):
        task_id = task.get("id") if isinstance(task, dict) else None
        if isinstance(task_id, bool) or not isinstance(task_id, (int, str)) or not str(task_id).strip():
            raise ImportFailed(f"{shown}: task #{position + 1} of tag {tag!r} has no usable \"id\"")
        key = str(task_id).strip()
        if key in ids:
            raise ImportFailed(f"{shown}: task id {key} appears twice in tag {tag!r}")
        ids[key] = safe_id(f"T{key}")
    if not ids:
        raise ImportFailed(f"{shown}: tag {tag!r} has no tasks")
    entries: list[dict[str, Any]] = []
    progress: dict[str, SourceProgress] = {}
    for task in tasks:
        key = str(task["id"]).strip()
        phase_id = ids[key]
        depends = _taskmaster_dependencies(task, key, ids, warnings)
        status = str(task.get("status") or "pending")
        if status in ("deferred", "cancelled"):
            warnings.append(f"{phase_id} is {status} in {shown}; imported as a normal phase")
        title = str(task.get("title") or phase_id)
        kind = "verify" if task.get("type") == "checkpoint" else detect_kind("", title)
        kind = kind if kind in BUILTIN_KINDS else "impl"
        entries.append({
            "id": phase_id,
            "kind": kind,
            "title": title,
            "depends_on": depends,
            "instructions": _taskmaster_instructions(task, key, shown, tag),
        })
        progress[phase_id] = SourceProgress(status == "done", f"{shown} status: {status}")
    warnings.append("Taskmaster test strategies are prose: no verification commands imported; coord judges each "
                    "phase by its completion marker")
    folder = path.parent
    parts = path.resolve().relative_to(workspace).parts
    if ".taskmaster" in parts:
        folder = workspace.joinpath(*parts[:parts.index(".taskmaster") + 1])
    project = folder.parent.name if folder.name == ".taskmaster" else folder.name
    plan_id = safe_id(f"{project}-{tag}")
    base = rel_path(folder, workspace)
    title = str(metadata.get("description") or f"Taskmaster tasks of {project} (tag {tag})")
    document, warning = plan_document(plan_id, title, folder, base, entries)
    warnings.extend([warning] if warning else [])
    return ImportResult("taskmaster", plan_id, shown, document, tuple(warnings), progress)


def _taskmaster_dependencies(task: dict[str, Any], key: str, ids: dict[str, str], warnings: list[str]) -> list[str]:
    depends: list[str] = []
    for dep in task.get("dependencies") or []:
        text = str(dep).strip()
        parent = text.split(".")[0]
        if text in ids:
            target = ids[text]
        elif "." in text and parent in ids:
            target = ids[parent]
            warnings.append(f"{ids[key]} depends on subtask {text}; imported as a dependency on {target}")
        else:
            warnings.append(f"{ids[key]} depends on unknown task {text!r}; dependency dropped")
            continue
        if target == ids[key]:
            continue
        if target not in depends:
            depends.append(target)
    return depends


def _taskmaster_instructions(task: dict[str, Any], key: str, shown: str, tag: str) -> str:
    """A task's own fields as Markdown: description, details, test strategy, acceptance criteria, subtasks."""
    parts = [f"Task {key} of the Taskmaster task list `{shown}` (tag `{tag}`), priority "
             f"{task.get('priority') or 'unset'}.", f"# {task.get('title') or 'Task ' + key}"]
    for label, name in (("", "description"), ("## Details", "details"), ("## Test strategy", "testStrategy"),
                        ("## Acceptance criteria", "acceptanceCriteria")):
        value = task.get(name)
        if isinstance(value, list):
            value = "\n".join(f"- {item}" for item in value)
        if value:
            parts.append(f"{label}\n\n{str(value).strip()}" if label else str(value).strip())
    subtasks = [item for item in task.get("subtasks") or [] if isinstance(item, dict)]
    if subtasks:
        lines = ["## Subtasks (mark them done in tasks.json as you finish them)", ""]
        for item in subtasks:
            done = "x" if item.get("status") == "done" else " "
            deps = ", ".join(str(dep) for dep in item.get("dependencies") or [])
            after = f" (after {deps})" if deps else ""
            lines.append(f"- [{done}] {key}.{item.get('id')} {item.get('title') or ''}{after}")
            for name in ("description", "details"):
                if item.get(name):
                    lines.extend(f"  {line}" for line in str(item[name]).strip().splitlines())
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"
