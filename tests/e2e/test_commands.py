"""The commands around a run, from the shell: ``status``, ``logs``, ``validate``, ``render``, ``init`` and a
``remediate`` usage error."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import FAKES, coord, db_rows, status, write_plan

pytestmark = pytest.mark.slow


def test_logs_prints_the_worker_log(workspace: Path) -> None:
    plan = write_plan(workspace, [{"id": "P01", "kind": "stub", "title": "x", "instructions": "[[fake:pass]]"}])
    assert coord(workspace, "run", str(plan)).returncode == 0

    result = coord(workspace, "logs", "P01", "-f")

    assert result.returncode == 0
    assert '"type":"thread.started"' in result.stdout.replace(" ", "")


def test_status_json_has_the_stable_keys(workspace: Path) -> None:
    plan = write_plan(workspace, [{"id": "P01", "kind": "stub", "title": "x", "instructions": "[[fake:pass]]"}])
    assert coord(workspace, "run", str(plan)).returncode == 0

    report = status(workspace, "PLAN-T")

    assert set(report) >= {"plan", "state", "phases", "totals"}
    assert set(report["phases"][0]) >= {"id", "kind", "title", "state", "attempts", "pid", "elapsed_s", "cycle",
                                        "tokens", "cost_usd", "verdict", "session_id", "commands", "file_changes"}
    phase = report["phases"][0]
    assert phase["tokens"] > 0 and phase["session_id"] and phase["commands"] >= 1 and phase["file_changes"] >= 1
    assert "Status: PASS" in phase["last_message"]
    [row] = db_rows(workspace, "SELECT session_id, commands, file_changes, last_message FROM attempts")
    assert (row["session_id"], row["commands"], row["file_changes"]) == (
        phase["session_id"], phase["commands"], phase["file_changes"])


def test_validate_reports_problems_and_exits_2(workspace: Path) -> None:
    path = workspace / "plans" / "bad.yaml"
    path.parent.mkdir()
    path.write_text("plan: X\nphases:\n  - id: P01\n    kind: stub\n    dependz: []\n", encoding="utf-8")

    result = coord(workspace, "validate", "plans/bad.yaml")

    assert result.returncode == 2
    assert "plans/bad.yaml:5:5: phases[0]: unknown key 'dependz'" in result.stderr


def test_render_prints_the_prompt_the_worker_gets(workspace: Path) -> None:
    plan = write_plan(workspace, [{"id": "P01", "kind": "stub", "title": "x", "instructions": "[[fake:pass]] hi"}])
    rendered = coord(workspace, "render", str(plan), "P01")
    assert rendered.returncode == 0
    assert coord(workspace, "run", str(plan)).returncode == 0
    assert rendered.stdout == (workspace / "tmp/PLAN-T/P01/1/prompt.md").read_text()
    remediation = coord(workspace, "render", str(plan), "P01", "--remediation")
    assert remediation.returncode == 0 and "attempt 1" in remediation.stdout.lower()


def test_init_scaffolds_a_workspace(workspace: Path) -> None:
    result = coord(workspace, "init")
    assert result.returncode == 0
    assert sorted(p.name for p in (workspace / "templates").iterdir()) == [
        "impl.md.j2", "remediate.md.j2", "stub.md.j2", "test.md.j2", "verify.md.j2"]
    assert "tmp/" in (workspace / ".gitignore").read_text()


def test_remediate_of_an_unknown_phase_is_a_usage_error(workspace: Path) -> None:
    plan = write_plan(workspace, [{"id": "P01", "kind": "stub", "title": "x", "instructions": "[[fake:pass]]"}])
    assert coord(workspace, "run", str(plan)).returncode == 0

    unknown = coord(workspace, "remediate", "P99")

    assert unknown.returncode == 2 and "no phase 'P99'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_stop_of_an_unknown_phase_is_a_usage_error(workspace: Path) -> None:
    plan = write_plan(workspace, [{"id": "P01", "kind": "stub", "title": "x", "instructions": "[[fake:pass]]"}])
    assert coord(workspace, "run", str(plan)).returncode == 0

    unknown = coord(workspace, "stop", "P99")

    assert unknown.returncode == 2 and "plan PLAN-T has no phase P99 (its phases: P01)" in unknown.stderr


def test_a_remediation_past_max_attempts_says_it_is_an_extra_one(workspace: Path) -> None:
    plan = write_plan(workspace, [{"id": "P01", "kind": "stub", "title": "x", "instructions": "[[fake:fail]]"}],
                      policy={"max_attempts": 2})
    assert coord(workspace, "run", str(plan)).returncode == 1

    extra = coord(workspace, "remediate", "P01")

    assert "P01 attempt 3 (an extra attempt a person asked for, beyond max_attempts 2)" in extra.stdout, extra.stdout
    prompt = (workspace / "tmp/PLAN-T/P01/3/prompt.md").read_text()
    assert "attempt 3 (an extra one a person asked for) of phase P01" in prompt
    assert "3/2" not in extra.stdout


def test_status_markdown_is_what_a_person_pastes_into_an_issue(workspace: Path) -> None:
    from tests.helpers import start_coord, status_if_recorded, wait_until

    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "fails", "instructions": "[[fake:no_report]]"},
        {"id": "P02", "kind": "impl", "title": "slow", "instructions": "[[fake:slow]]", "depends_on": []},
    ], policy={"max_attempts": 1}, agents={"fake": {"base": "codex", "binary": str(FAKES / "codex"),
                                                    "env": {"FAKE_CODEX_SLOW_SECONDS": "8"}}})
    run = start_coord(workspace, "run", str(plan), "--headless", "--max-parallel", "2")
    try:
        def one_blocked_one_running() -> bool:
            phases = (status_if_recorded(workspace) or {"phases": [{}, {}]})["phases"]
            return phases[0].get("state") == "blocked" and phases[1].get("pid") is not None

        wait_until(one_blocked_one_running, timeout=30)

        result = coord(workspace, "status", "--markdown")
    finally:
        run.communicate(timeout=60)

    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("## coord: PLAN-T — test plan\n")
    assert "**0/2 passed** · run running · 2 attempts · 1 blocked, 1 running" in text
    assert "| P02 | 1 |" in text and " ago |" in text  # how long since the running worker wrote
    assert "| P01 | blocked | 1 | blocked after 1 attempt(s); no report at reports/P01-worker.md" in text
    assert "### Last 10 events" in text and text.count("\n- `") == 10
