"""Frozen model of a plan (docs/design.md §4), built by ``plan.loader`` and read by every other part.

All durations are float seconds; all paths are strings relative to the workspace root unless said otherwise.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any, Literal

BUILTIN_AGENTS = ("codex", "claude", "shell", "mcp")
"""The agents coord has adapters for: each is a module ``coordinator/agents/NAME.py`` (``agents.AGENTS``). Adding one
is that module and its name here."""
BUILTIN_KINDS = ("stub", "test", "impl", "verify")
REMEDIATION_KIND = "remediate"
"""Reserved kind: its template (``remediate.md.j2``) renders the remediation prompts; no phase may use it."""


@dataclass(frozen=True)
class Policy:
    """Hang and remediation policy; plan-wide defaults that a phase may override field by field."""

    poll_interval: float = 300.0
    """Seconds per poll cycle of the hang policy."""
    max_cycles: int = 6
    """The worker is hung when still running after this many poll cycles."""
    max_silent_cycles: int | None = None
    """If set, hung sooner after this many consecutive cycles with no new output."""
    limit_wait: float = 1800.0
    """Seconds a phase waits after an agent's usage limit whose reset time the agent did not say (or that was
    still there after the reset); doubled for each limit in a row, up to a day."""
    max_command_cycles: int | None = None
    """If set, hung after this many cycles without output while one command runs (or the agent retries the
    model); those cycles never count as silence (``max_silent_cycles``)."""
    deadline: float | None = None
    """If set, wall-clock seconds an attempt may run, output or not; past it the worker is stopped and the
    attempt fails. Counted from the worker's start by the clock on the wall, so a suspended laptop counts too."""
    max_attempts: int = 3
    """Attempts per phase (1 worker + remediations) before the phase is blocked."""
    remediation: Literal["fresh", "resume"] = "fresh"
    """A fresh worker, or resume the agent session of the failed attempt."""
    remediation_base: Literal["attempt", "checkpoint"] = "attempt"
    """In a git working tree: a remediation continues from the failed attempt's tree (``attempt``), or from the
    last checkpoint (``checkpoint``: the working tree is put back first; the failed tree stays as its ref)."""
    kill_grace: float = 10.0
    """Seconds between SIGTERM and SIGKILL when a worker's process group is stopped."""
    log_cap_mib: float = 64.0
    """Size cap of a worker log in MiB: past it the supervisor drops the log's middle, keeping head and tail."""
    timeout: float = 600.0
    """Seconds a mechanical phase's whole run may take (the ``shell`` agent's script, an ``mcp`` call), enforced
    by the worker process itself, so it holds while no coordinator runs: past it the running command's process
    group is killed and the attempt fails as timed out. Agents (codex, claude) have ``deadline`` instead."""


@dataclass(frozen=True)
class Checks:
    """Which verdict checks apply (docs/design.md §9); switching one off is recorded in the evidence."""

    report: bool = True
    completed: bool = True
    verify: bool = True


VERIFY_EXPECTATIONS = ("pass", "fail", "no-output")
"""The values of ``verify[].expect``; what each means is in :class:`VerifyCommand`."""

VERIFY_SHELLS = ("sh", "bash")
"""The shells a verify command may name with ``shell:`` (``true`` is ``sh``)."""


@dataclass(frozen=True)
class VerifyCommand:
    """One verification command coord re-runs itself after a worker ends."""

    run: str
    """The command line, split with shlex into argv when ``shell`` is None; else the script the shell runs."""
    expect: Literal["pass", "fail", "no-output"] = "pass"
    """``pass``: exit 0 expected; ``fail``: a non-zero exit expected (red TDD phases); ``no-output``: it prints
    nothing (stdout and stderr, whitespace aside) and exits 0 or 1, as a ``grep``/``rg`` that finds nothing does
    (exit 2 and up is the search's own error, a FAIL)."""
    timeout: float = 600.0
    """Seconds before the command is killed and counted as failed."""
    shell: Literal["sh", "bash"] | None = None
    """None: argv from shlex; ``sh``: ``/bin/sh -c run``; ``bash``: ``bash -c run`` (scripts with bash syntax)."""
    name: str | None = None
    """A label for evidence and prompts (``3. Verify no stale imports``); the command itself when None."""

    @property
    def shown(self) -> str:
        """How evidence names it: ```npm test``` or, for a script, ```name`` (bash script, 12 lines)`."""
        lines = self.run.strip("\n").splitlines()
        if len(lines) <= 1 and self.name is None:
            return f"`{self.run}`"
        label = self.name or next((line.strip() for line in lines
                                   if line.strip() and not line.lstrip().startswith(("#", "set "))), lines[0])
        if len(lines) <= 1:
            return f"`{label}` (`{self.run}`)"
        return f"`{label}` ({self.shell or 'sh'} script, {len(lines)} lines)"


@dataclass(frozen=True)
class AllowedCommand:
    """One entry of a shell profile's allow-list (``agents.NAME.allow``); ``plan.allow_list`` matches against it."""

    pattern: tuple[str, ...]
    """The program (matched exactly), then one glob per argument (``*`` and ``?`` stay within a path component,
    ``**`` spans components); a last ``...`` allows any further arguments."""
    shell: bool = False
    """The command may use shell syntax (pipes, redirections, variables): an entry that does is then run by
    ``/bin/sh -c``, and every command in it must be allowed with ``shell: true``."""
    source: str = ""
    """Where the entry was given, for messages: ``agents.tools.allow[2]`` or ``~/.config/coord/config.yaml``."""

    @property
    def text(self) -> str:
        """The entry as a person writes it: ``python3 -m unittest ...``."""
        return shlex.join(self.pattern)


@dataclass(frozen=True)
class AgentProfile:
    """How to start one agent CLI; built-ins are ``codex``, ``claude`` and ``shell``."""

    name: str
    base: str
    """The built-in adapter this profile configures: ``codex``, ``claude``, ``shell`` or ``mcp``."""
    binary: str | None = None
    """Executable to run (default: the base name looked up on PATH)."""
    model: str | None = None
    sandbox: str | None = None
    """codex ``--sandbox`` value: read-only, workspace-write or danger-full-access."""
    dangerous: bool = False
    """Pass codex ``--dangerously-bypass-approvals-and-sandbox`` (needs sandbox danger-full-access)."""
    config: tuple[str, ...] = ()
    """Extra ``-c key=value`` overrides for codex, in order."""
    args: tuple[str, ...] = ()
    """Extra arguments appended to the agent's argv."""
    env: tuple[tuple[str, str], ...] = ()
    """Environment variables set for the worker, in order."""
    allow_lists: tuple[tuple[AllowedCommand, ...], ...] = ()
    """``shell`` profiles: the allow-lists a ``script`` entry must pass, every one of them (the plan's
    ``agents.NAME.allow``, and the user's config file's ``shell.allow`` when it has one); none means any command
    runs (the plan is trusted code)."""


@dataclass(frozen=True)
class McpServer:
    """An MCP server a phase calls (``mcp_servers.NAME``, or inline in a phase's ``mcp.server``): a command
    started over stdio, or the URL of a server already running on this machine (Streamable HTTP)."""

    name: str
    command: tuple[str, ...] = ()
    """stdio: the program and its arguments, each a Jinja2 template over the prompt context plus
    ``coord.python`` (the interpreter coord runs on, which has the MCP SDK); empty for a URL server."""
    url: str | None = None
    """Streamable HTTP endpoint on a loopback address (``http://127.0.0.1:8000/mcp``)."""
    env: tuple[tuple[str, str], ...] = ()
    """Variables added to a stdio server's environment."""
    cwd: str | None = None
    """Where a stdio server starts, relative to the workspace; None: the phase's workdir."""


@dataclass(frozen=True)
class McpCall:
    """What an ``agent: mcp`` phase does (its ``mcp:``): call one tool of one server, once per attempt."""

    server: McpServer
    tool: str
    arguments: dict[str, Any] = field(default_factory=dict)
    """The tool's arguments; every string in it (at any depth) is a Jinja2 template over the prompt context,
    rendered at launch: values only, never keys or structure."""


@dataclass(frozen=True)
class Phase:
    """One unit of work of a plan."""

    id: str
    kind: str
    title: str
    index: int
    """Position in the plan's ``phases`` list (0-based)."""
    instructions: str = ""
    """Free text for the prompt (already read from ``instructions_file`` if that was given)."""
    instructions_file: str | None = None
    depends_on: tuple[str, ...] = ()
    verify: tuple[VerifyCommand, ...] = ()
    policy: Policy = field(default_factory=Policy)
    """The effective policy: plan defaults merged with this phase's overrides."""
    checks: Checks = field(default_factory=Checks)
    """The effective checks: plan defaults merged with this phase's overrides."""
    agent: str = "codex"
    """Name of the effective agent profile (a key of ``Plan.agents``)."""
    script: tuple[str, ...] = ()
    """Commands for the ``shell`` agent, each run by ``/bin/sh -c`` in the workdir."""
    workdir: str = "."
    """Where the worker runs, relative to the workspace."""
    mcp: McpCall | None = None
    """The tool call of an ``agent: mcp`` phase; None for every other agent."""
    protected: tuple[str, ...] = ()
    """Glob patterns (relative to the workspace, ``**`` allowed) of files the worker must leave alone — typically
    the tests an earlier phase wrote. coord hashes them before the worker starts and fails the attempt if any
    changed, appeared or disappeared (``coordinator.judge.protected``)."""


@dataclass(frozen=True)
class Artifacts:
    """Jinja2 template strings for the evidence paths a worker must leave (relative to the workspace)."""

    report: str = "reports/{{ phase.id }}-worker.md"
    completed: str = ".completed/{{ phase.id }}.md"


@dataclass(frozen=True)
class Price:
    """What one model's tokens cost, in USD per 1,000,000 tokens (the unit of OpenAI's and Anthropic's price lists).

    Used by ``coordinator.agents.pricing`` to put a cost on an attempt from its own token counts.
    """

    input: float
    """Uncached input tokens."""
    output: float
    """Output tokens (reasoning tokens included, as the Responses API counts them)."""
    cached_input: float | None = None
    """Input tokens served from the prompt cache; None means they cost as much as ``input``."""


@dataclass(frozen=True)
class Budget:
    """Plan-wide spending limits: once reached, coord launches nothing more (running workers finish)."""

    max_cost: float | None = None
    """US dollars over every attempt of the plan (priced attempts only)."""
    max_tokens: int | None = None
    """Input + output tokens over every attempt of the plan."""


NOTIFY_EVENTS = ("blocked", "waiting", "finished")
"""What a person can be notified of: a phase blocked, a plan waiting on a usage limit, the run finished."""


@dataclass(frozen=True)
class Notify:
    """Where to send notifications (``notify:``); none when ``urls`` is empty (the default)."""

    urls: tuple[str, ...] = ()
    """apprise URLs: ``json://host/path``, ``ntfy://topic``, ``slack://…``, ``mailto://…``, ``dbus://`` …"""
    on: tuple[str, ...] = NOTIFY_EVENTS
    """Which of ``NOTIFY_EVENTS`` to send."""


@dataclass(frozen=True)
class Plan:
    """A validated plan."""

    id: str
    title: str
    path: str
    """Path of the plan file as given by the user."""
    workspace: str
    """Absolute path of the workspace root."""
    phases: tuple[Phase, ...]
    agents: dict[str, AgentProfile]
    """Every agent profile by name, built-ins included."""
    artifacts: Artifacts = field(default_factory=Artifacts)
    workdir: str = "."
    policy: Policy = field(default_factory=Policy)
    checks: Checks = field(default_factory=Checks)
    agent: str = "codex"
    prices: dict[str, Price] = field(default_factory=dict)
    """The plan's own ``prices:`` by model name; they take precedence over the packaged defaults
    (``coordinator/agents/prices.yaml``)."""
    budget: Budget = field(default_factory=Budget)
    notify: Notify = field(default_factory=Notify)
    """The plan's ``notify:``; when it names no URLs, the user's config file may (``coordinator.notify``)."""
    git: bool = True
    """Checkpoints in git when the workspace is in a git working tree (``git: off`` in the plan: none)."""
    mcp_servers: dict[str, McpServer] = field(default_factory=dict)
    """The plan's ``mcp_servers:`` by name (``agent: mcp`` phases name one, or give their own inline)."""

    def phase(self, phase_id: str) -> Phase:
        """Return the phase with this id.

        Raises:
            KeyError: no such phase.
        """
        for phase in self.phases:
            if phase.id == phase_id:
                return phase
        raise KeyError(phase_id)

    def ancestors(self, phase: Phase) -> list[str]:
        """The ids of the phases ``phase`` builds on, directly or through others, in plan order."""
        by_id = {item.id: item for item in self.phases}
        seen: set[str] = set()
        stack = list(phase.depends_on)
        while stack:
            current = stack.pop()
            if current in seen or current not in by_id:
                continue
            seen.add(current)
            stack.extend(by_id[current].depends_on)
        return [item.id for item in self.phases if item.id in seen]
