"""Prompt rendering: the Jinja2 environment over ``<workspace>/templates`` and the packaged default templates.

Who uses it: ``prompts.validate`` dry-renders every phase (and the remediation prompt) when a plan is loaded so
template errors stop a run before anything is launched; the engine renders ``prompt.md`` for each attempt; the
checks read the evidence paths from ``artifact_paths``; ``coord render`` prints a prompt exactly as a worker gets
it.

Templates are looked up by name in ``<workspace>/templates`` first, then in the packaged
``coordinator/prompts/templates``. A normal attempt uses ``<kind>.md.j2``; a remediation attempt uses
``remediate.md.j2``. The environment is a ``SandboxedEnvironment`` with ``StrictUndefined`` (a misspelt
variable is an error, never an empty string), ``autoescape=False``, ``keep_trailing_newline=True``,
``trim_blocks=True`` and ``lstrip_blocks=True`` (a line holding only a ``{% tag %}`` leaves no blank line).

Plan values are data, never template source: a title such as ``{{ cycler.__init__ }}`` appears literally in the
prompt. The only plan strings compiled as templates are ``artifacts.report`` and ``artifacts.completed``.

Template context (every name is always defined):

- ``plan``: ``id``, ``title``.
- ``phase``: ``id``, ``kind``, ``title``, ``instructions`` (text, possibly empty), ``depends_on`` (list of ids),
  ``verify`` (list of ``run``, ``expect`` ("pass"/"fail"), ``timeout`` (float seconds), ``shell`` (bool)).
- ``artifacts``: ``report``, ``completed`` -- workspace-relative paths the worker must write.
- ``attempt``: ``number`` (1 = the phase's own worker, 2.. = remediation), ``max_attempts``.
- ``remediation``: None for a normal attempt; otherwise the ``RemediationContext`` fields ``previous_attempt``,
  ``evidence`` (``Verdict.to_dict()``: ``verdict``, ``passed``, ``reason``, ``source``, ``checks``, each check
  with ``name``, ``status``, ``detail``, ``path``, ``argv``, ``exit_code``, ``output_tail``; missing keys read as
  None), ``log_path``, ``log_tail``, ``resumed_session``, ``note``.
- ``workdir``: where the worker runs, relative to the workspace.

Filters added to Jinja's own: ``duration`` (600.0 -> ``10m``) and ``fenced`` (wraps text in a Markdown code fence
longer than any backtick run inside it, so command output cannot break out of its block).

Capping evidence text (output tails, log tails) is the caller's job; the renderer shows what it is given.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    DictLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
)
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.loaders import split_template_path
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import missing

from coordinator.errors import Problem, TemplateError
from coordinator.judge.verdict import CheckResult, Verdict
from coordinator.paths import OutsideWorkspace, lexically_inside, open_inside
from coordinator.plan.model import REMEDIATION_KIND, Phase, Plan
from coordinator.util.timefmt import format_plan_duration

REMEDIATION_TEMPLATE = f"{REMEDIATION_KIND}.md.j2"
_TEMPLATE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.j2")
_CHECK_KEYS = ("name", "status", "detail", "path", "argv", "exit_code", "output_tail")


class TemplateRefused(JinjaTemplateError):
    """A workspace template that is, links followed, outside the workspace (or a loop, or not a file)."""


class _WorkspaceTemplates(BaseLoader):
    """The workspace's ``templates/``: like Jinja2's file loader, but a template is opened with
    ``paths.open_inside``, so one that links out of the workspace is refused instead of rendered into a prompt."""

    def __init__(self, folder: Path, workspace: Path) -> None:
        self.folder = folder
        self.workspace = workspace

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        path = self.folder.joinpath(*split_template_path(template))
        try:
            fd = open_inside(self.workspace, path)
        except FileNotFoundError:
            raise TemplateNotFound(template) from None
        except OutsideWorkspace as exc:
            raise TemplateRefused(f"templates/{template} {exc}; refused") from None
        with os.fdopen(fd, "rb") as handle:
            mtime = os.fstat(handle.fileno()).st_mtime
            text = handle.read().decode("utf-8")

        def uptodate() -> bool:
            try:
                return path.stat().st_mtime == mtime
            except OSError:
                return False

        return text, str(path), uptodate


def read_workspace_templates(workspace: Path) -> dict[str, str]:
    """The workspace's ``templates/*.j2`` by name, each read with ``paths.open_inside`` (one that links out of the
    workspace, or is not a UTF-8 file, is left out: loading the plan refused it already)."""
    folder = Path(workspace).resolve() / "templates"
    found: dict[str, str] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.j2")):
        try:
            fd = open_inside(Path(workspace).resolve(), path)
        except (OSError, OutsideWorkspace):
            continue
        with os.fdopen(fd, "rb") as handle:
            try:
                found[path.name] = handle.read().decode("utf-8")
            except UnicodeDecodeError:
                continue
    return found


def packaged_templates_dir() -> Path:
    """Return the folder of the default templates shipped in the wheel (``coordinator/prompts/templates``)."""
    return Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class ArtifactPaths:
    """Where a phase's worker must leave its evidence, relative to the workspace.

    Attributes:
        report: the worker's report (holds a ``Status: PASS``/``Status: FAIL`` line).
        completed: the completion marker (names the phase, holds the real command outputs).
    """

    report: str
    completed: str


@dataclass(frozen=True)
class RemediationContext:
    """What a remediation prompt tells the next worker about the failed attempt.

    Attributes:
        previous_attempt: number of the failed attempt.
        evidence: ``Verdict.to_dict()`` of the failed attempt.
        log_path: workspace-relative ``worker.log`` of the failed attempt.
        log_tail: capped tail of that log.
        resumed_session: agent session id being resumed, or None for a fresh worker.
        note: the person's note from ``coord remediate --note``, if any.
    """

    previous_attempt: int
    evidence: dict
    log_path: str
    log_tail: str
    resumed_session: str | None = None
    note: str | None = None


SAMPLE_REMEDIATION = RemediationContext(
    previous_attempt=1,
    evidence=Verdict(
        passed=False,
        reason="verification `pytest -q tests/test_sample.py` exited 1 (expected pass)",
        checks=(
            CheckResult(name="exit", status="pass", detail="worker exited 0", exit_code=0),
            CheckResult(name="report", status="pass", detail="report says PASS", path="reports/SAMPLE-worker.md"),
            CheckResult(
                name="completed",
                status="fail",
                detail="completion marker holds a placeholder `$(npm test)`",
                path=".completed/SAMPLE.md",
            ),
            CheckResult(
                name="verify[0]",
                status="fail",
                detail="verification `pytest -q tests/test_sample.py` exited 1 (expected pass)",
                path="tmp/SAMPLE/P01/1/verify-0.log",
                argv=("pytest", "-q", "tests/test_sample.py"),
                exit_code=1,
                output_tail="E   AssertionError: assert 1 == 2\n1 failed in 0.03s",
            ),
        ),
    ).to_dict(),
    log_path="tmp/SAMPLE/P01/1/worker.log",
    log_tail='{"type":"turn.completed","usage":{"input_tokens":10,"output_tokens":5}}',
    resumed_session="00000000-0000-0000-0000-000000000000",
    note="Sample note from the person running coord.",
)
"""A filled-in remediation context; the plan loader renders ``remediate.md.j2`` with it to find template errors."""


def fenced(text: object, info: str = "") -> str:
    """Wrap text in a Markdown code fence that its own content cannot close.

    Args:
        text: the content (converted with ``str``; None becomes empty).
        info: optional info string after the opening fence (e.g. ``text``).

    Returns:
        The fenced block, without a trailing newline.
    """
    body = "" if text is None else str(text)
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{body.rstrip(chr(10))}\n{fence}"


class _View(Mapping):
    """Read-only attribute-and-key view of a dict, remembering its path for error messages (``phase.verify[0]``)."""

    __slots__ = ("_coord_data", "_coord_path")

    def __init__(self, path: str, data: dict[str, Any]) -> None:
        self._coord_path = path
        self._coord_data = data

    def __getattr__(self, name: str) -> Any:
        try:
            return self._coord_data[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: str) -> Any:
        return self._coord_data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._coord_data)

    def __len__(self) -> int:
        return len(self._coord_data)

    def __repr__(self) -> str:
        return repr(self._coord_data)

    __str__ = __repr__


class _ListView(list):
    """A list that remembers its path for error messages."""

    _coord_path = ""


# What a worker's prompt says each ``verify[].expect`` requires (``phase.verify[N].must`` in templates).
VERIFY_REQUIREMENTS = {"pass": "pass (exit 0)", "fail": "fail (non-zero exit)",
                       "no-output": "print nothing (exit 0 or 1, as a search that finds nothing)"}


def _wrap(value: Any, path: str) -> Any:
    if isinstance(value, dict):
        return _View(path, {str(key): _wrap(item, f"{path}.{key}") for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        items = _ListView(_wrap(item, f"{path}[{index}]") for index, item in enumerate(value))
        items._coord_path = path
        return items
    return value


class _Undefined(StrictUndefined):
    """StrictUndefined whose message names the full path, e.g. ``'phase.tests' is undefined``."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        obj = self._undefined_obj
        path = getattr(obj, "_coord_path", "") if isinstance(obj, (_View, _ListView)) else ""
        if self._undefined_hint is None and obj is not missing and path:
            name = self._undefined_name
            return f"'{path}.{name}' is undefined" if isinstance(name, str) else f"'{path}[{name!r}]' is undefined"
        return super()._undefined_message


def _normalized_evidence(evidence: dict) -> dict[str, Any]:
    """Fill keys a template may read so that an older or partial evidence dict still renders."""
    data = dict(evidence or {})
    data.setdefault("passed", False)
    data.setdefault("verdict", "PASS" if data["passed"] else "FAIL")
    data.setdefault("reason", "")
    data.setdefault("source", "checks")
    checks = []
    for check in data.get("checks") or []:
        check = dict(check)
        for key in _CHECK_KEYS:
            check.setdefault(key, None)
        checks.append(check)
    data["checks"] = checks
    return data


class PromptRenderer:
    """Renders prompts and evidence paths for the phases of a plan in one workspace.

    Args:
        workspace: the workspace root; ``<workspace>/templates`` overrides the packaged templates by name.
    """

    def __init__(self, workspace: Path, templates: Mapping[str, str] | None = None) -> None:
        self.workspace = Path(workspace).resolve()
        self.workspace_templates = self.workspace / "templates"
        self.packaged_templates = packaged_templates_dir()
        self.snapshot_templates = dict(templates) if templates is not None else None
        """A run's copies of the workspace templates (``plan.snapshot``): used instead of the files, which a
        worker may have changed since the run started."""
        overrides: BaseLoader = (DictLoader(self.snapshot_templates) if self.snapshot_templates is not None
                                 else _WorkspaceTemplates(self.workspace_templates, self.workspace))
        self.env = SandboxedEnvironment(
            loader=ChoiceLoader([overrides, FileSystemLoader(str(self.packaged_templates))]),
            undefined=_Undefined,
            keep_trailing_newline=True,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["duration"] = format_plan_duration
        self.env.filters["fenced"] = fenced
        self._artifact_cache: dict[str, Any] = {}

    def template_path(self, name: str) -> Path | None:
        """Find the file a template name resolves to.

        Args:
            name: a template file name such as ``impl.md.j2`` (no folders).

        Returns:
            ``<workspace>/templates/<name>`` if that file exists, else the packaged file if it exists, else None
            (also for names that are not plain file names).
        """
        if not _TEMPLATE_NAME.fullmatch(name) or ".." in name:
            return None
        if self.snapshot_templates is not None:
            if name in self.snapshot_templates:
                return self.workspace_templates / name
            candidate = self.packaged_templates / name
            return candidate if candidate.is_file() else None
        for folder in (self.workspace_templates, self.packaged_templates):
            candidate = folder / name
            if candidate.is_file():
                return candidate
        return None

    def display_path(self, filename: str | Path | None, name: str = "") -> str:
        """Return how a template file is named in messages: workspace-relative, or
        ``coordinator/prompts/templates/...`` for a packaged one.

        Args:
            filename: absolute file name reported by Jinja, or None.
            name: template name used when ``filename`` is None.

        Returns:
            A short path string.
        """
        if filename is None:
            return f"templates/{name}" if name else "<template>"
        path = Path(filename)
        for root in (self.workspace, self.packaged_templates.parents[2]):
            if path.is_relative_to(root):
                return path.relative_to(root).as_posix()
        return str(path)

    def render(
        self,
        plan: Plan,
        phase: Phase,
        *,
        attempt_number: int,
        remediation: RemediationContext | None = None,
        unverified_dependencies: Sequence[str] = (),
    ) -> str:
        """Render the prompt of one attempt.

        Args:
            plan: the loaded plan.
            phase: the phase of the attempt (one of ``plan.phases``).
            attempt_number: 1 for the phase's own worker, 2.. for remediations.
            remediation: the failed attempt's evidence; when given, ``remediate.md.j2`` is used.
            unverified_dependencies: the phases this one builds on (``Plan.ancestors``) that passed on existing
                evidence whose verification coord did not re-run (``states.EXISTING_EVIDENCE``); the prompt says
                so (``unverified_dependencies`` in templates).

        Returns:
            The prompt text exactly as the worker gets it.

        Raises:
            TemplateError: the template is missing, unreadable, has a syntax error, uses an undefined value or
                fails otherwise; an artifact path fails to render or leaves the workspace; or the prompt is empty.
        """
        name = REMEDIATION_TEMPLATE if remediation is not None else f"{phase.kind}.md.j2"
        context = self.context(plan, phase, attempt_number, remediation)
        context["unverified_dependencies"] = list(unverified_dependencies)
        what = f"{phase.id} remediation" if remediation is not None else phase.id
        if self.template_path(name) is None:
            raise TemplateError([Problem(file=f"templates/{name}", field="", message="not found")])
        try:
            template = self.env.get_template(name)
            text = template.render(context)
        except Exception as exc:  # any failure inside a template (filters, sandbox, recursion) is its problem
            raise TemplateError([self._problem(exc, name, f"rendering {what}")]) from exc
        if not text.strip():
            display = self.display_path(self.template_path(name), name)
            raise TemplateError(
                [Problem(file=display, field="", message=f"phase {phase.id}: rendered prompt is empty")]
            )
        return text

    def artifact_paths(self, plan: Plan, phase: Phase) -> ArtifactPaths:
        """Render ``artifacts.report`` and ``artifacts.completed`` for a phase.

        Args:
            plan: the loaded plan (its ``artifacts`` strings are Jinja2 templates over ``plan`` and ``phase``).
            phase: the phase.

        Returns:
            Both paths, workspace-relative, as rendered (surrounding whitespace removed).

        Raises:
            TemplateError: a path fails to render, renders empty, or leaves the workspace by its text; the
                problems carry ``file=plan.path`` and ``field="artifacts.report"``/``"artifacts.completed"``.
        """
        context = {"plan": self._plan_view(plan), "phase": self._phase_view(phase)}
        problems: list[Problem] = []
        rendered: dict[str, str] = {}
        for name in ("report", "completed"):
            source = getattr(plan.artifacts, name)
            field = f"artifacts.{name}"
            try:
                template = self._artifact_cache.get(source)
                if template is None:
                    template = self._artifact_cache[source] = self.env.from_string(source)
                value = template.render(context).strip()
            except TemplateSyntaxError as exc:
                problems.append(Problem(file=plan.path, field=field, message=exc.message or str(exc)))
                continue
            except Exception as exc:  # a failing artifact template is a plan problem, not a crash
                problems.append(Problem(file=plan.path, field=field, message=_exception_text(exc)))
                continue
            if not value:
                problems.append(Problem(file=plan.path, field=field, message=f"{source!r} renders to an empty path"))
                continue
            try:
                # By its text only. What is at the path is a worker's doing: the judge refuses a link out of the
                # workspace when it opens the file, as a FAIL of that check, never as a plan error.
                lexically_inside(value)
            except OutsideWorkspace as exc:
                problems.append(Problem(file=plan.path, field=field, message=str(exc)))
                continue
            rendered[name] = value
        if problems:
            raise TemplateError(problems)
        return ArtifactPaths(report=rendered["report"], completed=rendered["completed"])

    def context(
        self, plan: Plan, phase: Phase, attempt_number: int, remediation: RemediationContext | None
    ) -> dict[str, Any]:
        """The template context of one attempt (the module docstring lists it). Raises TemplateError as render."""
        paths = self.artifact_paths(plan, phase)
        remediation_view = None
        if remediation is not None:
            remediation_view = _wrap(
                {
                    "previous_attempt": remediation.previous_attempt,
                    "evidence": _normalized_evidence(remediation.evidence),
                    "log_path": remediation.log_path,
                    "log_tail": remediation.log_tail,
                    "resumed_session": remediation.resumed_session,
                    "note": remediation.note,
                },
                "remediation",
            )
        return {
            "plan": self._plan_view(plan),
            "phase": self._phase_view(phase),
            "artifacts": _wrap({"report": paths.report, "completed": paths.completed}, "artifacts"),
            "attempt": _wrap({"number": attempt_number, "max_attempts": phase.policy.max_attempts}, "attempt"),
            "remediation": remediation_view,
            "workdir": phase.workdir,
            "unverified_dependencies": [],
        }

    @staticmethod
    def _plan_view(plan: Plan) -> _View:
        return _wrap({"id": plan.id, "title": plan.title}, "plan")

    @staticmethod
    def _phase_view(phase: Phase) -> _View:
        return _wrap(
            {
                "id": phase.id,
                "kind": phase.kind,
                "title": phase.title,
                "instructions": phase.instructions,
                "depends_on": list(phase.depends_on),
                "verify": [
                    {"run": v.run, "expect": v.expect, "timeout": v.timeout, "shell": v.shell or "sh",
                     "name": v.name, "script": "\n" in v.run.strip(),
                     "must": VERIFY_REQUIREMENTS[v.expect]}
                    for v in phase.verify
                ],
                "protected": list(phase.protected),
            },
            "phase",
        )

    def _problem(self, exc: BaseException, name: str, what: str) -> Problem:
        """Turn a Jinja failure into a Problem naming the template file and line."""
        if isinstance(exc, TemplateSyntaxError):
            return Problem(
                file=self.display_path(exc.filename, exc.name or name),
                field="",
                message=f"{exc.message} ({what})",
                line=exc.lineno,
            )
        if isinstance(exc, TemplateNotFound):
            filename, line = self._template_frame(exc)
            if filename is None:
                return Problem(file=f"templates/{exc.name}", field="", message=f"not found ({what})")
            return Problem(
                file=self.display_path(filename, name),
                field="",
                message=f"template '{exc.name}' not found ({what})",
                line=line,
            )
        frame_file, line = self._template_frame(exc)
        source: str | Path | None = frame_file if frame_file is not None else self.template_path(name)
        return Problem(
            file=self.display_path(source, name), field="", message=f"{_exception_text(exc)} ({what})", line=line
        )

    def _template_frame(self, exc: BaseException) -> tuple[str | None, int | None]:
        """Find the innermost traceback frame that is a template line (Jinja rewrites frames to template lines)."""
        roots = (str(self.workspace_templates), str(self.packaged_templates))
        found: tuple[str | None, int | None] = (None, None)
        tb = exc.__traceback__
        while tb is not None:
            filename = tb.tb_frame.f_code.co_filename
            if filename.startswith(roots):
                found = (filename, tb.tb_lineno)
            tb = tb.tb_next
        return found


def _exception_text(exc: BaseException) -> str:
    """Return the message of a render failure: Jinja's own text for its errors, ``Type: text`` for anything else."""
    if isinstance(exc, JinjaTemplateError):
        return exc.message or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"
