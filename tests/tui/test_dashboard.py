"""Pilot tests of the real dashboard over real workspaces and stores filled by real engine runs (fake codex)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import DataTable, Markdown, ProgressBar, RichLog, Static
from textual.widgets.data_table import RowDoesNotExist

from coordinator.engine.core import RunOptions
from coordinator.engine.thread import EngineThread
from coordinator.paths import WorkspacePaths
from coordinator.plan.loader import load_plan
from coordinator.tui.app import CoordApp, make_app
from coordinator.tui.model import DashboardSource
from coordinator.tui.screens import ConfirmDialog, RemediateDialog
from tests.helpers import FIXTURES_DIR, coord, db_rows, phase_state, start_coord, wait_until, write_plan

pytestmark = pytest.mark.slow

SIZE = (150, 40)


def cells(app: CoordApp, phase_id: str) -> list[str]:
    """The row of a phase as shown, or [] while the table has no such row yet."""
    table = app.query_one("#phases", DataTable)
    try:
        return [str(value) for value in table.get_row(phase_id)]
    except RowDoesNotExist:
        return []


def text_of(widget: Static) -> str:
    """The text a Static shows (markup or rich renderables rendered to plain text)."""
    import io

    from rich.console import Console

    console = Console(width=200, file=io.StringIO(), record=True)
    content = widget.content
    console.print(content)
    return console.export_text()


async def wait_for(pilot, predicate, timeout: float = 20.0) -> None:  # noqa: ANN001
    """Let the app run until ``predicate()`` holds (the app keeps refreshing from the store meanwhile)."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"dashboard never reached the expected state: {predicate}")
        await pilot.pause(0.05)


@pytest.fixture
def finished_run(tmp_path: Path) -> Path:
    """A workspace whose run ended: P01 passed, P02 blocked after a failing report, P03 never started."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "stub", "title": "Provider stub", "instructions": "[[fake:pass]]"},
        {"id": "P02", "kind": "test", "title": "Provider tests", "instructions": "[[fake:fail]]"},
        {"id": "P03", "kind": "impl", "title": "Provider implementation", "instructions": "[[fake:pass]]"},
    ], policy={"max_attempts": 1})
    result = coord(workspace, "run", str(plan), "--headless")
    assert result.returncode == 1, result.stdout + result.stderr
    return workspace


def dashboard(workspace: Path, **kwargs) -> CoordApp:  # noqa: ANN003
    plan = load_plan(workspace / "plans" / "PLAN-T.yaml", workspace)
    return make_app(DashboardSource(WorkspacePaths(workspace), "PLAN-T", plan), **kwargs)


async def test_shows_progress_phases_and_a_blocked_phase(finished_run: Path) -> None:
    app = dashboard(finished_run)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        summary = text_of(app.query_one("#summary", Static))
        assert "1/3 passed" in summary and "1 blocked" in summary and "read-only" in summary
        assert app.query_one("#progress", ProgressBar).progress == 1
        assert cells(app, "P01")[:5] == ["P01", "stub", "Provider stub", "passed", "1/1"]
        assert cells(app, "P02")[3] == "BLOCKED"
        assert cells(app, "P03")[3] == "pending"
        events = "\n".join(str(line) for line in app.query_one("#events", RichLog).lines)
        assert "P02 blocked after 1 attempt(s)" in events


async def test_detail_pane_shows_log_verdict_report_and_prompt(finished_run: Path) -> None:
    app = dashboard(finished_run)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        log = "\n".join(line.text for line in app.query_one("#log", RichLog).lines)
        assert "turn completed" in log and "session " in log  # codex JSON events made readable
        await pilot.press("down")  # select P02
        await wait_for(pilot, lambda: app.selected == "P02")
        for tab in ("verdict", "report", "prompt"):  # a tab is filled when it is shown
            await pilot.click(f"#--content-tab-tab-{tab}")
            await pilot.pause()
        verdict = text_of(app.query_one("#verdict", Static))
        assert "FAIL — report reports/P02-worker.md says FAIL" in verdict
        report = app.query_one("#report", Markdown)
        assert "Status: FAIL" in report.source
        prompt = text_of(app.query_one("#prompt", Static))
        assert "P02" in prompt


async def test_filter_narrows_the_table(finished_run: Path) -> None:
    app = dashboard(finished_run)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("slash")
        await pilot.press(*"blocked")
        await pilot.pause()
        assert app.query_one("#phases", DataTable).row_count == 1
        await pilot.press("escape")
        await pilot.pause()
        assert app.query_one("#phases", DataTable).row_count == 3


async def test_commands_on_a_finished_run_say_no_coordinator_runs(finished_run: Path) -> None:
    app = dashboard(finished_run)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("r")
        await pilot.pause()
        assert not isinstance(app.screen, RemediateDialog)
        assert any("No coordinator is running" in n.message for n in app._notifications)


async def test_steers_a_live_run_over_the_control_socket(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "long", "instructions": "[[fake:hang]]"},
        {"id": "P02", "kind": "test", "title": "fails", "instructions": "[[fake:fail,pass]]", "depends_on": []},
        {"id": "P03", "kind": "verify", "title": "after P02", "instructions": "[[fake:pass]]", "depends_on": ["P02"]},
    ], policy={"max_attempts": 1})
    running = start_coord(workspace, "run", str(plan), "--headless", "--max-parallel", "2")
    try:
        wait_until(lambda: phase_state(workspace, "P02") == "blocked")
        app = dashboard(workspace)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: cells(app, "P01")[3:4] == ["running"])
            assert f"coordinator pid {running.pid}" in text_of(app.query_one("#summary", Static))

            await pilot.press("p")  # pause scheduling
            await app.workers.wait_for_complete()
            wait_until(lambda: db_rows(workspace, "SELECT paused FROM plans")[0]["paused"] == 1)
            await pilot.press("p")  # and resume it
            await app.workers.wait_for_complete()
            wait_until(lambda: db_rows(workspace, "SELECT paused FROM plans")[0]["paused"] == 0)

            await pilot.press("down")  # P02, blocked
            await wait_for(pilot, lambda: app.selected == "P02")
            await pilot.press("r")
            await wait_for(pilot, lambda: isinstance(app.screen, RemediateDialog))
            await pilot.click("#note")
            await pilot.press(*"mind the edge case", "enter")
            await app.workers.wait_for_complete()
            wait_until(lambda: phase_state(workspace, "P02") == "passed")
            prompt = (workspace / "tmp/PLAN-T/P02/2/prompt.md").read_text()
            assert "mind the edge case" in prompt

            await pilot.press("up")  # P01, running: stop it
            await wait_for(pilot, lambda: app.selected == "P01")
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
            await pilot.press("y")
            await app.workers.wait_for_complete()
            wait_until(lambda: phase_state(workspace, "P01") == "blocked")
            await wait_for(pilot, lambda: cells(app, "P01")[3] == "BLOCKED")
        assert running.wait(timeout=30) == 1  # P01 stopped by a person: the run ends with a blocked phase
    finally:
        if running.poll() is None:
            coord(workspace, "stop")
            running.wait(timeout=30)
    assert phase_state(workspace, "P03") == "passed"


async def test_quitting_detaches_and_leaves_the_worker_running(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    plan_path = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "long", "instructions": "[[fake:hang]]"},
    ])
    paths = WorkspacePaths(workspace)
    plan = load_plan(workspace / plan_path, workspace)
    app = make_app(DashboardSource(paths, plan.id, plan))
    app.engine = EngineThread(plan, paths, RunOptions())
    app.engine.start()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: cells(app, "P01")[3:4] == ["running"])
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.engine.is_alive())
        await pilot.pause(0.2)
    assert app.return_code == 130
    identity = json.loads((workspace / "tmp/PLAN-T/P01/1/identity.json").read_text())
    assert not (workspace / "tmp/PLAN-T/P01/1/exit.json").exists()  # the worker still runs
    assert phase_state(workspace, "P01") == "running"
    assert "coord tui" in app.detach_message()
    stop = coord(workspace, "stop")  # clean up: no coordinator runs, so the supervisor is asked directly
    assert stop.returncode == 0, stop.stderr
    wait_until(lambda: (workspace / "tmp/PLAN-T/P01/1/exit.json").exists())
    assert identity["worker_pid"]


async def test_summary_counts_phases_passed_on_unverified_evidence(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    folder = workspace / "project-plans" / "imported"
    (folder / "plan").mkdir(parents=True)
    (folder / "plan" / "01-setup-impl.md").write_text(
        "# Phase 01: Setup\n\n## Phase ID\n\n`PLAN-20261201-IMPORTED.P01`\n\n## Verification Commands\n\n"
        "```bash\ntest -f setup.done\n```\n")
    (folder / ".completed").mkdir()
    (folder / ".completed" / "P01.md").write_text("Phase: P01\nCompleted: 2026-11-30 10:00\nVerification:\nok\n")
    assert coord(workspace, "import", "project-plans/imported", "--with-progress").returncode == 0
    plan = load_plan(workspace / "plans" / "PLAN-20261201-IMPORTED.yaml", workspace)
    app = make_app(DashboardSource(WorkspacePaths(workspace), plan.id, plan))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        summary = text_of(app.query_one("#summary", Static))
        assert "1/1 passed" in summary and "1 on unverified evidence" in summary


async def test_an_mcp_phase_shows_its_call_log_and_verdict(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    plan = write_plan(workspace, [{"id": "P01", "kind": "verify", "title": "Ask the notes server", "agent": "mcp",
                                   "mcp": {"server": "notes", "tool": "add", "arguments": {"a": 40, "b": 2}}}],
                      mcp_servers={"notes": {"command": ["{{ coord.python }}",
                                                         str(FIXTURES_DIR / "mcp_server.py")]}},
                      policy={"max_attempts": 1})
    result = coord(workspace, "run", str(plan), "--headless", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    app = dashboard(workspace)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert cells(app, "P01")[3] == "passed"
        log = "\n".join(line.text for line in app.query_one("#log", RichLog).lines)
        assert "calling tool 'add'" in log and "ok in" in log
        await pilot.click("#--content-tab-tab-verdict")
        await pilot.pause()
        verdict = text_of(app.query_one("#verdict", Static))
        assert "tool `add` of MCP server `notes` answered in" in verdict
        await pilot.click("#--content-tab-tab-prompt")
        await pilot.pause()
        prompt = text_of(app.query_one("#prompt", Static))
        assert "no model is involved" in prompt and '"tool": "add"' in prompt  # what the worker really gets
