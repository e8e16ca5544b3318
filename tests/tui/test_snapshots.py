"""A few snapshots of the dashboard (layout regressions); behaviour lives in test_dashboard.py.

Stable by construction: a fixed 140x40 terminal, a store written through the store's own API with fixed
timestamps, an injected clock, PIDs hidden, and no coordinator running (nothing changes while capturing).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from coordinator.paths import WorkspacePaths
from coordinator.plan.loader import load_plan
from coordinator.state.store import Store
from coordinator.tui.app import CoordApp, make_app
from coordinator.tui.model import DashboardSource

SIZE = (140, 40)
T0 = "2026-11-24T08:00:00+0000"
NOW = 1_795_507_500.0  # 2026-11-24T08:05:00+0000: the injected clock


def at(minute: int, second: int = 0) -> str:
    return f"2026-11-24T08:{minute:02d}:{second:02d}+0000"


CODEX_LOG = [
    {"type": "thread.started", "thread_id": "01a20c94-8cbe-77a1-98f0-d36b7f2783ed"},
    {"type": "turn.started"},
    {"type": "item.completed", "item": {"id": "item_1", "type": "command_execution", "command": "npm test",
                                        "aggregated_output": "3 passing\n", "exit_code": 0, "status": "completed"}},
    {"type": "item.completed", "item": {"id": "item_2", "type": "file_change", "status": "completed",
                                        "changes": [{"path": "src/provider.ts", "kind": "update"}]}},
    {"type": "item.completed", "item": {"id": "item_3", "type": "agent_message", "text": "Stub written. Status: PASS"}},
    {"type": "turn.completed", "usage": {"input_tokens": 2400, "cached_input_tokens": 400, "output_tokens": 68}},
]


def build_workspace(root: Path) -> Path:
    """A workspace with a plan and a store in a fixed state: passed, blocked, running, pending."""
    workspace = root / "ws"
    (workspace / "plans").mkdir(parents=True)
    plan = {
        "plan": "PLAN-SNAP",
        "title": "Stateless provider refactor",
        "policy": {"max_attempts": 2, "max_cycles": 6},
        "phases": [
            {"id": "P01", "kind": "stub", "title": "Provider stub", "instructions": "Write the stub."},
            {"id": "P01a", "kind": "verify", "title": "Verify the stub", "instructions": "Check it."},
            {"id": "P02", "kind": "test", "title": "Provider tests (red)", "instructions": "Write tests."},
            {"id": "P03", "kind": "impl", "title": "Provider implementation", "instructions": "Implement.",
             "depends_on": []},
            {"id": "P04", "kind": "verify", "title": "End-to-end verification", "instructions": "Verify."},
        ],
    }
    (workspace / "plans" / "PLAN-SNAP.yaml").write_text(yaml.safe_dump(plan, sort_keys=False), encoding="utf-8")
    paths = WorkspacePaths(workspace)
    Store.open(paths).close()  # the schema; the rows below are a made-up run, written straight in SQL
    phases = [
        ("P01", "stub", "Provider stub", "passed", [("passed", 0, "PASS", "all checks passed", 2468)]),
        ("P01a", "verify", "Verify the stub", "passed", [("passed", 0, "PASS", "all checks passed", 1200)]),
        ("P02", "test", "Provider tests (red)", "blocked", [
            ("failed", 0, "FAIL", "worker reported PASS; verification `npm test` exited 1 (expected fail)", 900),
            ("failed", 0, "FAIL", "no report at reports/P02-worker.md (exit 0)", 700)]),
        ("P03", "impl", "Provider implementation", "running", [("running", None, None, None, 0)]),
        ("P04", "verify", "End-to-end verification", "pending", []),
    ]
    with sqlite3.connect(paths.db) as tx:
        tx.execute("INSERT INTO plans (plan_id, path, title, state, started_at, updated_at) VALUES (?,?,?,?,?,?)",
                   ("PLAN-SNAP", "plans/PLAN-SNAP.yaml", plan["title"], "finished", T0, at(4)))
        for position, (phase_id, kind, title, state, attempts) in enumerate(phases):
            last = attempts[-1] if attempts else None
            tx.execute(
                "INSERT INTO phases (plan_id, phase_id, position, kind, title, state, attempts, verdict, reason, "
                "verdict_source, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                ("PLAN-SNAP", phase_id, position, kind, title, state, len(attempts), last[2] if last else None,
                 (f"blocked after 2 attempt(s); {last[3]}" if state == "blocked" else last[3]) if last else None,
                 "checks" if last and last[2] else None, at(4)),
            )
            for number, (attempt_state, exit_code, verdict, reason, tokens) in enumerate(attempts, start=1):
                attempt_dir = paths.attempt_dir("PLAN-SNAP", phase_id, number)
                attempt_dir.mkdir(parents=True)
                tx.execute(
                    "INSERT INTO attempts (attempt_id, plan_id, phase_id, number, remediation, state, agent, "
                    "attempt_dir, worker_pid, started_at, ended_at, exit_code, cycle, verdict, reason, input_tokens, "
                    "output_tokens) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (f"{phase_id}-{number}", "PLAN-SNAP", phase_id, number, int(number > 1), attempt_state,
                     "codex", str(attempt_dir), 4242 if attempt_state == "running" else None,
                     at(position, 0), None if attempt_state == "running" else at(position, 40), exit_code,
                     2 if attempt_state == "running" else 0, verdict, reason, tokens, tokens // 20),
                )
                (attempt_dir / "worker.log").write_text("".join(json.dumps(e) + "\n" for e in CODEX_LOG))
                (attempt_dir / "prompt.md").write_text(f"# Phase {phase_id}: {title}\n\nDo the work.\n")
                if verdict:
                    checks = [{"name": "exit", "status": "pass", "detail": "exit code 0 and a completed turn"}]
                    if verdict == "FAIL":
                        checks.append({"name": "verify[0]", "status": "fail", "detail": reason,
                                       "argv": ["npm", "test"], "exit_code": 1, "path": "verify-0.log",
                                       "output_tail": "1 failing\n  provider returns a response: expected 2 got 1"})
                    evidence = {"verdict": verdict, "passed": verdict == "PASS", "reason": reason,
                                "source": "checks", "checks": checks}
                    (attempt_dir / "evidence.json").write_text(json.dumps(evidence))
            tx.execute("INSERT INTO events (plan_id, at, type, phase_id, message) VALUES (?,?,?,?,?)",
                       ("PLAN-SNAP", at(4), "notice", phase_id, f"{phase_id} {state}"))
    (workspace / "reports").mkdir()
    (workspace / "reports" / "P01-worker.md").write_text("# P01 report\n\nStatus: PASS\n\n- stub written\n")
    return workspace


@pytest.fixture
def snapshot_app(tmp_path: Path) -> CoordApp:
    workspace = build_workspace(tmp_path)
    plan = load_plan(workspace / "plans" / "PLAN-SNAP.yaml", workspace)
    source = DashboardSource(WorkspacePaths(workspace), "PLAN-SNAP", plan, clock=lambda: NOW)
    return make_app(source, show_pids=False, refresh_interval=3600)


def test_overview(snap_compare, snapshot_app: CoordApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=SIZE)


def test_blocked_phase_verdict(snap_compare, snapshot_app: CoordApp) -> None:
    async def run_before(pilot) -> None:  # noqa: ANN001
        await pilot.press("down", "down")
        await pilot.pause()
        pilot.app.query_one("#detail").active = "tab-verdict"
        await pilot.pause()

    assert snap_compare(snapshot_app, terminal_size=SIZE, run_before=run_before)
