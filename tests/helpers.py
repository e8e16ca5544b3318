"""Helpers the tests share: a workspace with a plan, the real ``coord`` CLI run as a subprocess, its store and audit
files read back, and the plan folders ``coord import`` is tested on (``tests/fixtures``, ``../shared/real-plans``)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest
import yaml

if TYPE_CHECKING:
    from coordinator.plan.importers import ImportResult

REPO_ROOT = Path(__file__).resolve().parent.parent
FAKES = Path(__file__).resolve().parent / "fakes"
# Files the tests read, found relative to this checkout: tests/fixtures/, and the real llxprt-code plan folders in
# the shared folder beside the checkout (``<repo>/../shared/real-plans``; the tests that need it skip without it).
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"
SHARED_REAL_PLANS = Path(__file__).resolve().parents[2] / "shared" / "real-plans"

VERIFY_FIXED = {"run": "test -f fixed.txt", "expect": "pass"}


def coord_env(workspace: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["CODEX_HOME"] = str(workspace / ".codex-home")
    # The fake codex needs no key, but coord checks that codex has one before a run (agents/readiness.py).
    env.setdefault("OPENAI_API_KEY", "not-a-key-the-fake-codex-ignores-it")
    env.pop("FAKE_CODEX_SCENARIO", None)
    if extra:
        env.update(extra)
    return env


def coord(
    workspace: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """Run ``coord ARGS`` in ``workspace`` to completion and return its result (stdout, stderr, returncode)."""
    return subprocess.run(
        [sys.executable, "-m", "coordinator", *args],
        cwd=workspace,
        env=coord_env(workspace, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def start_coord(workspace: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``coord ARGS`` in the background, in its own session (as a terminal's job would be)."""
    return subprocess.Popen(
        [sys.executable, "-m", "coordinator", *args],
        cwd=workspace,
        env=coord_env(workspace, env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def write_plan(workspace: Path, phases: list[dict[str, Any]], name: str = "PLAN-T", **top: Any) -> Path:
    """Write ``plans/<name>.yaml`` using the fake codex CLI as the default agent; returns its relative path."""
    plan: dict[str, Any] = {
        "plan": name,
        "title": "test plan",
        "agent": "fake",
        "agents": {"fake": {"base": "codex", "binary": str(FAKES / "codex")}},
        "policy": {"poll_interval": "0.2s", "max_cycles": 50, "max_attempts": 2, "kill_grace": "0.5s"},
        "artifacts": {"report": "reports/{{ phase.id }}-worker.md", "completed": ".completed/{{ phase.id }}.md"},
        "phases": phases,
    }
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(plan.get(key), dict):
            plan[key] = {**plan[key], **value}
        else:
            plan[key] = value
    path = workspace / "plans" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(plan, sort_keys=False), encoding="utf-8")
    return path.relative_to(workspace)


def fake_agent(**env: str) -> dict:
    """An agent profile running the fake codex with extra environment."""
    return {"fake": {"base": "codex", "binary": str(REPO_ROOT / "tests" / "fakes" / "codex"), "env": env}}


def status(workspace: Path, plan: str | None = None) -> dict[str, Any]:
    args = ["status", "--json"] + ([plan] if plan else [])
    result = coord(workspace, *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def status_if_recorded(workspace: Path) -> dict[str, Any] | None:
    """``coord status --json``, or None while no run is recorded yet (for polling a run that is starting)."""
    shown = coord(workspace, "status", "--json")
    return json.loads(shown.stdout) if shown.returncode == 0 else None


def phase_status(workspace: Path, phase_id: str) -> dict[str, Any]:
    return next(p for p in status(workspace)["phases"] if p["id"] == phase_id)


def store_file(workspace: Path, suffix: str = "") -> Path:
    """The workspace's SQLite store (in its state directory, outside the workspace), or its ``-wal``/``-shm``."""
    from coordinator.paths import WorkspacePaths

    db = WorkspacePaths(workspace).db
    return db.with_name(db.name + suffix)


def records_file(workspace: Path, phase_id: str, number: int, name: str, plan: str = "PLAN-T") -> Path:
    """An attempt's record in coord's state directory (``identity.json``, ``exit.json``, ``spec.json``): the copy
    coord reads; the attempt folder under ``tmp/`` holds one for people."""
    from coordinator.paths import WorkspacePaths

    return WorkspacePaths(workspace).records_dir(plan, phase_id, number) / name


def db_rows(workspace: Path, sql: str, *params: Any) -> list[sqlite3.Row]:
    """Read the store the way ``coord status`` does: a read-only connection."""
    connection = sqlite3.connect(f"file:{store_file(workspace)}?mode=ro", uri=True)
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def phase_state(workspace: Path, phase_id: str) -> str | None:
    """The phase's state in the store, or None while the store or the phase does not exist yet."""
    try:
        rows = db_rows(workspace, "SELECT state FROM phases WHERE phase_id=?", phase_id)
    except sqlite3.DatabaseError:
        return None
    return rows[0]["state"] if rows else None


def events(workspace: Path, plan: str = "PLAN-T") -> list[dict[str, Any]]:
    path = workspace / "tmp" / plan / "events.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def processes_with_cookie(name: str, value: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose environment holds ``name=value``."""
    found = []
    for process in psutil.process_iter(["environ", "status"]):
        try:
            environ = process.info["environ"] or {}
            if environ.get(name) == value and process.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def git(root: Path, *args: str) -> str:
    """``git ARGS`` in ``root``; its stdout, stripped (the test fails on a non-zero exit)."""
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def git_repository(root: Path, *files: tuple[str, str]) -> Path:
    """A git repository at ``root`` on branch ``main`` whose one commit ("start") holds ``files`` (path, text)."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Person")
    git(root, "config", "user.email", "person@example.com")
    for name, text in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "start")
    return root


def alive(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie waiting for its reaper counts as gone)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_until(predicate: Callable[[], object], timeout: float = 15.0, every: float = 0.02) -> object:
    """Poll ``predicate`` until it returns a truthy value; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s: {predicate}")
        time.sleep(every)


# --- coord import: the real plan folders (SHARED_REAL_PLANS) the importer tests read -----------------------------

SP2 = "20251018statelessprovider2"
S4 = "20251023stateless4"
S5 = "20251027-stateless5"
I1590 = "issue1590"
I1587 = "issue1587"
S7 = "20251029-stateless7"  # one plan.md with a phase table
F501 = "20251108fix501"  # one plan.md, no phases
LOGGING = "logging-merge"  # README.md + tasks/NN-*.md
I1575 = "issue1575"  # plan.md + phase1..4.md at the root
SUBAGENTIC = "20251029subagentic1"  # overview.md + seven unnumbered topic files
I1456 = "issue1456"  # plan/implementation-plan.md with `## Phase PNN` sections


def add_plan(workspace: Path, real_plans: Path, name: str) -> Path:
    """Copy a real plan folder to ``project-plans/<name>`` in the workspace; return its absolute path."""
    target = workspace / "project-plans" / name
    shutil.copytree(real_plans / name, target)
    return target


def imported_phase(result: ImportResult, phase_id: str) -> dict:
    """The phase ``phase_id`` of an import's plan document."""
    return next(item for item in result.document["phases"] if item["id"] == phase_id)
