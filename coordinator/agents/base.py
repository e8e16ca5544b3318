"""The agent adapter protocol and the values that cross it.

Who calls it: the engine builds a ``LaunchRequest`` per attempt, asks the adapter for a ``WorkerCommand`` (handed
to the supervisor), and after the worker ends asks it to ``summarize`` the worker's log into an ``AgentSummary``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from coordinator.agents.readiness import Finding
from coordinator.plan.model import AgentProfile
from coordinator.util.files import read_json, write_json_atomic

SUMMARY_FILE = "summary.json"
"""An attempt's summary, in its folder (``tmp/PLAN/P07/N/summary.json``)."""


@dataclass(frozen=True)
class LaunchRequest:
    """Everything an adapter may use to build a worker's command line."""

    prompt_path: Path
    """Absolute path of the rendered prompt (``tmp/PLAN/P07/N/prompt.md``)."""
    attempt_dir: Path
    """Absolute path of the attempt folder; adapters may put files there (e.g. codex ``-o last.txt``)."""
    workdir: Path
    """Absolute directory the worker runs in."""
    resume_session: str | None = None
    """Session id to resume (remediation policy ``resume``), or None for a fresh session."""
    script: tuple[str, ...] = ()
    """The phase's ``script`` commands (the shell agent runs them)."""
    phase_id: str = ""
    """The phase, for messages."""
    workspace: Path | None = None
    """Absolute workspace root, when the worker may write beyond its workdir (the report and marker live there)."""
    timeout: float = 600.0
    """Seconds the whole run of a mechanical worker may take (``Policy.timeout``; the shell and mcp agents)."""
    kill_grace: float = 10.0
    """Seconds between SIGTERM and SIGKILL when a mechanical worker stops a command (``Policy.kill_grace``)."""
    records_dir: Path | None = None
    """The attempt's records folder in the state directory, out of the workers' reach (``mcp`` puts its request
    there)."""
    mcp_call: dict[str, Any] | None = None
    """An ``agent: mcp`` phase's call, rendered (``prompts.values.render_call``); None for every other phase."""


@dataclass(frozen=True)
class WorkerCommand:
    """What the supervisor starts: argv (never through a shell), stdin source and extra environment."""

    argv: tuple[str, ...]
    stdin_path: str | None = None
    """File whose content is the worker's stdin; None means /dev/null. Never an open pipe."""
    env: dict[str, str] = field(default_factory=dict)
    """Variables added to the coordinator's environment for the worker."""
    inline_runner: str | None = None
    """``argv`` runs this module of ``coordinator/process`` (``shell_runner``) as ``python -I -S -c CODE ARG``: a
    supervisor that has it loaded (one forked by the fork server) may run it in the worker process it forked,
    with ``ARG``, instead of starting an interpreter for it. The same program either way."""


@dataclass(frozen=True)
class FailedCommand:
    """A command the worker ran that failed and that it never ran again successfully (docs/design.md §9).

    Attributes:
        command: the command as the agent ran it, without the ``bash -c``/``-lc`` wrapper codex adds.
        exit_code: its exit code (codex ``command_execution.exit_code``), or None when the agent does not say
            (a Claude ``tool_result`` with ``is_error``).
        output_tail: its output's last lines, at most ``OUTPUT_TAIL_CHARS`` characters.
    """

    command: str
    exit_code: int | None
    output_tail: str

    def describe(self) -> str:
        """```mkdir reports` → exit 1: mkdir: cannot create directory 'reports': Read-only file system``."""
        last = next((line.strip() for line in reversed(self.output_tail.splitlines()) if line.strip()), "")
        code = f"exit {self.exit_code}" if self.exit_code is not None else "error"
        shown = self.command if len(self.command) <= 80 else self.command[:77] + "..."
        return f"`{shown}` → {code}" + (f": {last[:200]}" if last else "")


OUTPUT_TAIL_CHARS = 600
"""How much of a failed command's output a summary keeps."""
MAX_FAILED_COMMANDS = 20
"""Failed commands a summary keeps at most (the latest)."""


def unresolved_failures(runs: list[tuple[str, int | None, bool, str]]) -> tuple[FailedCommand, ...]:
    """The failed commands of ``runs`` (command, exit code, succeeded, output, in the order run) that did not
    succeed when run again later: a test run red before the fix and green after is not a failure."""
    failed: dict[str, FailedCommand] = {}
    for command, exit_code, succeeded, output in runs:
        if succeeded:
            failed.pop(command, None)
        else:
            failed.pop(command, None)  # keep the latest run, in order
            failed[command] = FailedCommand(command, exit_code, output[-OUTPUT_TAIL_CHARS:])
    return tuple(failed.values())[-MAX_FAILED_COMMANDS:]


@dataclass(frozen=True)
class AgentSummary:
    """What the worker told us, parsed from its log (``summary.json``).

    Token counts are this attempt's own (for codex: the thread-cumulative totals minus those seen before).
    """

    session_id: str | None = None
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None
    last_message: str | None = None
    commands: int = 0
    """Commands the agent ran (codex ``command_execution`` items)."""
    file_changes: int = 0
    """File changes the agent made (codex ``file_change`` items)."""
    completed: bool = False
    """The agent signalled a completed turn (codex ``turn.completed``; shell: always True)."""
    error: str | None = None
    """The agent's own failure message (codex ``turn.failed.error.message`` or the final ``error`` event)."""
    failed_commands: tuple[FailedCommand, ...] = ()
    """Commands the worker ran that failed and never succeeded later (:func:`unresolved_failures`)."""
    call: dict[str, Any] | None = None
    """An MCP phase's call record (``mcp-call.json`` of ``agents.mcp_worker``); None for other agents."""

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, Any]:
        """The summary's fields and ``total_tokens``: the object of ``summary.json`` (plus ``price``)."""
        data = asdict(self)
        data["total_tokens"] = self.total_tokens
        return data

    def write(self, attempt_dir: Path, price: dict[str, Any] | None, inside: Path | None = None) -> None:
        """Write the attempt's ``summary.json``: :meth:`to_dict` and the ``price`` its cost was computed from
        (``pricing.PricedAttempt.basis``, None when the agent reported its own cost or no price is known).

        Raises:
            OutsideWorkspace: ``attempt_dir`` is, links followed, outside ``inside`` (the workspace).
            OSError: it could not be written.
        """
        # Not fsynced: it is parsed again from the log at will, and the store keeps the tokens and cost.
        write_json_atomic(attempt_dir / SUMMARY_FILE, {**self.to_dict(), "price": price}, inside=inside,
                          durable=False)

    @staticmethod
    def cumulative_usage_in(attempt_dir: Path) -> dict[str, Any] | None:
        """The session-cumulative usage an attempt's ``summary.json`` recorded (codex and Claude Code summaries
        carry one), for the attempt that resumes its session; None when there is none."""
        data = read_json(attempt_dir / SUMMARY_FILE)
        usage = data.get("cumulative_usage") if isinstance(data, dict) else None
        return usage if isinstance(usage, dict) else None


class Agent(Protocol):
    """An agent adapter (codex, claude, shell): what the engine, the judge and the checks before a run use."""

    profile: AgentProfile
    can_resume: ClassVar[bool]
    """Whether a remediation can continue the previous attempt's agent session."""
    requires_completed_turn: ClassVar[bool]
    """True when exit 0 alone is not success (codex needs ``turn.completed``)."""

    def __init__(self, profile: AgentProfile) -> None: ...

    @property
    def program(self) -> str:
        """The program the worker runs: the profile's ``binary``, else the adapter's default."""
        ...

    def bypass_warning(self) -> str | None:
        """One line saying the profile turns the agent's own sandbox or permission checks off, or None."""
        ...

    def readiness(self) -> list[Finding]:
        """The free checks of this agent beyond its program being there: version, credentials (``readiness``)."""
        ...

    def build_command(self, request: LaunchRequest) -> WorkerCommand:
        """Return the worker's command for this attempt.

        Raises:
            coordinator.errors.UsageError: the request cannot be served (e.g. shell agent without ``script``).
        """
        ...

    def summarize(self, log_path: Path, attempt_dir: Path,
                  previous_usage: dict[str, Any] | None = None) -> AgentSummary:
        """Parse the worker's log (stdout and stderr merged) into a summary; never raises on bad lines.

        Args:
            log_path: the attempt's ``worker.log``.
            attempt_dir: the attempt folder (adapters may read files they asked the agent to write there).
            previous_usage: on a resumed session, the ``cumulative_usage`` the attempt before recorded in its
                ``summary.json``, so this attempt's own tokens and cost are the difference; None otherwise.
        """
        ...


class AgentBase:
    """What every adapter shares; a new adapter subclasses it, sets the three facts below and implements
    ``build_command`` and ``summarize``.

    Args:
        profile: the agent profile of the plan (``plan.model.AgentProfile``).
    """

    default_binary: ClassVar[str] = ""
    """The program run when the profile sets no ``binary``."""
    can_resume: ClassVar[bool] = False
    requires_completed_turn: ClassVar[bool] = True

    def __init__(self, profile: AgentProfile) -> None:
        self.profile = profile

    @property
    def program(self) -> str:
        return self.profile.binary or self.default_binary

    def bypass_warning(self) -> str | None:
        return None

    def readiness(self) -> list[Finding]:
        return []
