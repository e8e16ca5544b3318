"""Adapter for the OpenAI Codex CLI run as ``codex exec --json`` (docs/design.md §12, docs/codex-exec.md).

Who calls it: the engine asks :meth:`CodexAgent.build_command` for a worker's argv, and after the worker ends asks
:meth:`CodexAgent.summarize` to read the JSONL events in ``worker.log``. The event schema is that of
``codex exec --json`` (codex-rs/exec, ``exec_events.rs``), as measured on codex-cli 0.169.0.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordinator.agents import readiness
from coordinator.agents.base import AgentBase, AgentSummary, LaunchRequest, WorkerCommand, unresolved_failures
from coordinator.agents.codex_rollout import codex_home, rollout_runs
from coordinator.agents.jsonl import MAX_EVENT_CHARS, as_int, iter_log_events
from coordinator.agents.readiness import Finding
from coordinator.errors import UsageError

LAST_MESSAGE_FILE = "last-message.txt"
"""Name of the ``-o/--output-last-message`` file inside the attempt folder."""

DEFAULT_SANDBOX = "workspace-write"
"""The sandbox a profile gets when it names none: the worker may write in its workdir (and the temp dirs) and run
commands there, and nothing outside it. codex's own default for ``exec`` is ``read-only``, with which no phase can
write its report."""

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")



@dataclass(frozen=True)
class CodexSummary(AgentSummary):
    """An :class:`AgentSummary` with the codex-specific facts the engine needs later.

    Attributes:
        cumulative_usage: the last ``turn.completed.usage`` exactly as codex reported it: thread-cumulative
            totals (a resumed thread counts its earlier turns too). Pass it as ``previous_usage`` when
            summarizing the next attempt that resumes this thread, so that attempt's own tokens are counted.
        last_event: the last JSON event line of the log (capped at 1000 characters), for evidence.
    """

    cumulative_usage: dict[str, int] = field(default_factory=dict)
    last_event: str | None = None


def _usage_delta(cumulative: dict[str, int], previous: dict[str, Any] | None) -> dict[str, int]:
    """This attempt's own usage: ``cumulative`` minus ``previous`` (both thread totals).

    A previous total larger than the current one means it belongs to another thread (codex started a new one),
    so nothing is subtracted then.
    """
    if not previous:
        return dict(cumulative)
    delta = {key: cumulative.get(key, 0) - as_int(previous.get(key)) for key in cumulative}
    if any(value < 0 for value in delta.values()):
        return dict(cumulative)
    return delta


def _unwrapped(command: str) -> str:
    """``mkdir reports`` for codex's ``/bin/bash -lc 'mkdir reports'``: the command the model asked for."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    if len(words) == 3 and Path(words[0]).name in ("bash", "sh", "zsh") and words[1] in ("-c", "-lc"):
        return words[2]
    return command


class CodexAgent(AgentBase):
    """The ``codex`` adapter.

    Args:
        profile: the agent profile (``binary``, ``model``, ``sandbox``, ``dangerous``, ``config``, ``args``, ``env``).
    """

    default_binary = "codex"
    can_resume = True
    requires_completed_turn = True  # codex exits 0 on some failures: success also needs a `turn.completed`

    def readiness(self) -> list[Finding]:
        found = readiness.version(self.profile, self.program)
        return [found, readiness.codex_credentials(self.profile)] if found.ok else [found]

    def bypass_warning(self) -> str | None:
        if self.profile.dangerous or "--dangerously-bypass-approvals-and-sandbox" in self.profile.args \
                or "--yolo" in self.profile.args:
            return (f"agent profile {self.profile.name!r} runs codex with --dangerously-bypass-approvals-and-sandbox: "
                    "workers can change anything this user can.")
        if self.profile.sandbox == "danger-full-access":
            return (f"agent profile {self.profile.name!r} runs codex with sandbox danger-full-access: workers can "
                    "write anywhere this user can.")
        return None

    def build_command(self, request: LaunchRequest) -> WorkerCommand:
        """Build ``codex exec`` argv for a fresh thread or a resume, with the prompt file as stdin.

        Fresh: ``codex [-c K=V]… exec --json --skip-git-repo-check -C WORKDIR [-m M] -s S|--dangerously-…
        -o ATTEMPT/last-message.txt [ARGS…] -``.
        Resume: ``codex [-c K=V]… exec -C WORKDIR [-s S] resume UUID --json --skip-git-repo-check [-m M]
        [--dangerously-…] -o … [ARGS…] -``; ``-C`` and ``-s`` are ``exec`` flags that clap rejects after
        ``resume`` (exit 2), and ``--skip-git-repo-check`` must be given again after it (docs/codex-exec.md §1).
        A resumed turn runs with the sandbox of its own command line, not the first turn's, so it is given again.
        ``S`` is the profile's ``sandbox``, else :data:`DEFAULT_SANDBOX` (none with ``dangerous``, which bypasses it).

        Args:
            request: the launch request; ``resume_session`` selects the resume form.

        Returns:
            The worker command; ``env`` holds ``profile.env``.

        Raises:
            UsageError: ``resume_session`` is not a UUID. codex resolves a non-UUID as a thread *name*, and a
                name that matches nothing silently starts a new thread (exit 0), which would hide a lost session.
        """
        profile = self.profile
        head: list[str] = [self.program]
        for override in profile.config:
            head += ["-c", override]
        head.append("exec")
        workdir = str(request.workdir)
        last_message = str(Path(request.attempt_dir) / LAST_MESSAGE_FILE)
        model = ["-m", profile.model] if profile.model else []
        # The profile's sandbox, else the default one; the bypass flag turns codex's sandbox off whatever -s says.
        chosen = profile.sandbox or (None if profile.dangerous else DEFAULT_SANDBOX)
        sandbox = ["-s", chosen] if chosen else []
        dangerous = ["--dangerously-bypass-approvals-and-sandbox"] if profile.dangerous else []
        tail = ["-o", last_message, *profile.args, "-"]
        if request.resume_session is None:
            argv = [*head, "--json", "--skip-git-repo-check", "-C", workdir, *model, *sandbox, *dangerous, *tail]
        else:
            session = request.resume_session
            if not UUID_RE.match(session):
                raise UsageError(
                    f"cannot resume codex session {session!r}: not a thread UUID "
                    "(codex would silently start a new thread)"
                )
            argv = [*head, "-C", workdir, *sandbox, "resume", session, "--json", "--skip-git-repo-check",
                    *model, *dangerous, *tail]
        return WorkerCommand(argv=tuple(argv), stdin_path=str(request.prompt_path), env=dict(profile.env))

    def summarize(self, log_path: Path, attempt_dir: Path,
                  previous_usage: dict[str, Any] | None = None) -> CodexSummary:
        """Read the JSONL events of ``codex exec --json`` from a worker log.

        Args:
            log_path: ``worker.log`` (stdout and stderr merged); missing or unreadable counts as empty.
            attempt_dir: the attempt folder; its ``last-message.txt`` (the ``-o`` file) is preferred for the
                last message when non-empty (codex creates it EMPTY on a failed turn).
            previous_usage: thread-cumulative usage seen before this attempt (the ``cumulative_usage`` of the
                summary of the attempt whose thread this one resumed); it is subtracted so the token fields are
                this attempt's own. None for a fresh thread.

        Returns:
            A :class:`CodexSummary`. ``cost_usd`` stays None (prices are not known here). Never raises on bad
            lines: non-JSON and torn lines are skipped.
        """
        session_id: str | None = None
        cumulative: dict[str, int] = {}
        agent_message: str | None = None
        commands: set[str] = set()
        anonymous_commands = 0
        changes: set[str] = set()
        anonymous_changes = 0
        runs: list[tuple[str, int | None, bool, str]] = []
        completed = False
        turn_error: str | None = None
        top_error: str | None = None
        last_event: str | None = None
        for event, line in iter_log_events(log_path):
            last_event = line.strip()[:MAX_EVENT_CHARS]
            kind = event["type"]
            if kind == "thread.started":
                thread_id = event.get("thread_id")
                if session_id is None and isinstance(thread_id, str):
                    session_id = thread_id
            elif kind == "turn.started":
                # A new turn starts clean: a failure of an earlier turn in the same log is history.
                completed = False
                turn_error = None
            elif kind == "turn.completed":
                completed = True
                turn_error = None
                usage = event.get("usage")
                if isinstance(usage, dict):
                    cumulative = {key: value for key, value in usage.items()
                                  if isinstance(value, int) and not isinstance(value, bool)}
            elif kind == "turn.failed":
                completed = False
                error = event.get("error")
                message = error.get("message") if isinstance(error, dict) else None
                turn_error = str(message) if message else "turn failed"
            elif kind == "error":
                message = event.get("message")
                # Retries are reported as top-level errors too; only the final fatal one counts.
                if isinstance(message, str) and not message.startswith("Reconnecting..."):
                    top_error = message
            elif kind == "item.completed":
                item = event.get("item")
                if not isinstance(item, dict):
                    continue
                item_type = item.get("type")
                item_id = item.get("id")
                if item_type == "agent_message" and isinstance(item.get("text"), str):
                    agent_message = item["text"]
                elif item_type == "command_execution" and item.get("status") != "declined":
                    if isinstance(item_id, str):
                        commands.add(item_id)
                    else:
                        anonymous_commands += 1
                    exit_code = item.get("exit_code")
                    code = exit_code if isinstance(exit_code, int) and not isinstance(exit_code, bool) else None
                    output = item.get("aggregated_output")
                    runs.append((_unwrapped(str(item.get("command") or "")), code,
                                 item.get("status") != "failed" and code in (0, None),
                                 output if isinstance(output, str) else ""))
                elif item_type == "file_change":
                    if isinstance(item_id, str):
                        changes.add(item_id)
                    else:
                        anonymous_changes += 1
        last_message = agent_message
        try:
            written = (Path(attempt_dir) / LAST_MESSAGE_FILE).read_text(encoding="utf-8", errors="replace")
        except OSError:
            written = ""
        if written.strip():
            last_message = written
        own = _usage_delta(cumulative, previous_usage)
        stream_commands = len(commands) + anonymous_commands
        if not runs and session_id is not None and UUID_RE.match(session_id):
            # codex -s read-only prints no command items; its session rollout still has the commands.
            runs = rollout_runs(codex_home(dict(self.profile.env)), session_id)
            stream_commands = stream_commands or len(runs)
        return CodexSummary(
            session_id=session_id,
            input_tokens=own.get("input_tokens", 0),
            cached_input_tokens=own.get("cached_input_tokens", 0),
            output_tokens=own.get("output_tokens", 0),
            reasoning_tokens=own.get("reasoning_output_tokens", 0),
            cost_usd=None,
            last_message=last_message,
            commands=stream_commands,
            file_changes=len(changes) + anonymous_changes,
            completed=completed,
            error=turn_error or top_error,
            cumulative_usage=cumulative,
            failed_commands=unresolved_failures(runs),
            last_event=last_event,
        )


ADAPTER = CodexAgent
"""What ``agents.AGENTS`` runs for ``base: codex``."""
