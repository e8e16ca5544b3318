"""End-to-end runs of the real ``coord`` CLI over real workspaces, with the fake codex CLI as the model."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from tests.helpers import (
    REPO_ROOT,
    coord,
    coord_env,
    db_rows,
    events,
    phase_state,
    phase_status,
    processes_with_cookie,
    start_coord,
    status,
    wait_until,
    write_plan,
)

pytestmark = pytest.mark.slow

VERIFY_FIXED = {"run": "test -f fixed.txt", "expect": "pass"}


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


def fake_agent(**env: str) -> dict:
    """An agent profile running the fake codex with extra environment."""
    return {"fake": {"base": "codex", "binary": str(REPO_ROOT / "tests" / "fakes" / "codex"), "env": env}}


def test_passing_plan_records_every_file_of_the_contract(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "stub", "title": "stub", "instructions": "[[fake:pass]] write the stub"},
        {"id": "P01a", "kind": "verify", "title": "check stub", "instructions": "[[fake:pass]]"},
        {"id": "P02", "kind": "impl", "title": "impl", "instructions": "[[fake:pass]]",
         "verify": [VERIFY_FIXED]},
    ], agents=fake_agent(FAKE_CODEX_WRITE="fixed.txt=yes"))

    result = coord(workspace, "run", str(plan), "--headless")

    assert result.returncode == 0, result.stdout + result.stderr
    report = status(workspace)
    assert [p["state"] for p in report["phases"]] == ["passed"] * 3
    assert report["totals"]["passed"] == 3
    pid_lines = (workspace / "tmp" / "PLAN-T" / "worker-pids.txt").read_text().splitlines()
    assert [line.split()[0] for line in pid_lines] == ["P01", "P01a", "P02"]
    assert all(" PID: " in line and " attempt 1 " in line for line in pid_lines)
    attempt = workspace / "tmp" / "PLAN-T" / "P02" / "1"
    for name in ("prompt.md", "worker.log", "identity.json", "exit.json", "summary.json", "evidence.json"):
        assert (attempt / name).is_file(), name
    assert json.loads((attempt / "exit.json").read_text())["exit_code"] == 0
    summary = json.loads((attempt / "summary.json").read_text())
    assert summary["session_id"] and summary["completed"] is True
    evidence = json.loads((attempt / "evidence.json").read_text())
    assert evidence["verdict"] == "PASS"
    assert {c["name"] for c in evidence["checks"]} >= {"exit", "report", "completed", "verify[0]"}
    # Plan runs learn of an end by the socket push and exit.json; signal files are for `coord wait` only.
    assert not (workspace / "tmp" / "PLAN-T" / ".signals").exists()
    types = [e["type"] for e in events(workspace)]
    assert types.count("attempt_launched") == 3 and types[-1] == "run_finished"


def test_worker_that_lies_is_judged_fail_and_remediated_with_the_evidence(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "impl", "instructions": "[[fake:lie,pass]] implement it",
         "verify": [VERIFY_FIXED]},
    ], agents=fake_agent(FAKE_CODEX_WRITE="fixed.txt=yes"))

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "worker reported PASS; verification `test -f fixed.txt` exited 1" in result.stdout
    first = json.loads((workspace / "tmp/PLAN-T/P01/1/evidence.json").read_text())
    assert first["verdict"] == "FAIL"
    remediation_prompt = (workspace / "tmp/PLAN-T/P01/2/prompt.md").read_text()
    assert "test -f fixed.txt" in remediation_prompt
    assert "tmp/PLAN-T/P01/1/worker.log" in remediation_prompt
    phase = phase_status(workspace, "P01")
    assert phase["state"] == "passed" and phase["attempts"] == 2 and phase["remediations"] == 1


def test_blocked_phase_stops_its_dependents_and_exits_1(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "always fails", "instructions": "[[fake:fail]]"},
        {"id": "P02", "kind": "verify", "title": "after", "instructions": "[[fake:pass]]"},
        {"id": "P03", "kind": "verify", "title": "independent", "instructions": "[[fake:pass]]", "depends_on": []},
    ])

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1
    states = {p["id"]: p["state"] for p in status(workspace)["phases"]}
    assert states == {"P01": "blocked", "P02": "pending", "P03": "passed"}
    assert len(db_rows(workspace, "SELECT * FROM attempts WHERE phase_id='P01'")) == 2
    assert db_rows(workspace, "SELECT * FROM attempts WHERE phase_id='P02'") == []


def test_hung_worker_is_killed_with_its_escaped_grandchild(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "hangs", "instructions": "[[fake:fork_escape]]"},
    ], policy={"poll_interval": "0.2s", "max_cycles": 3, "max_attempts": 1, "kill_grace": "0.3s"})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1
    assert "poll cycle 1/3" in result.stdout and "poll cycle 3/3" in result.stdout
    evidence = json.loads((workspace / "tmp/PLAN-T/P01/1/evidence.json").read_text())
    assert evidence["verdict"] == "FAIL" and "hung" in evidence["reason"]
    exit_record = json.loads((workspace / "tmp/PLAN-T/P01/1/exit.json").read_text())
    assert exit_record["stop_request"] == "hung"
    assert exit_record["signal"] in (signal.SIGTERM, signal.SIGKILL)
    assert exit_record["stragglers"], "the grandchild that left the process group was found and killed"
    attempt_id = db_rows(workspace, "SELECT attempt_id FROM attempts")[0]["attempt_id"]
    assert processes_with_cookie("COORD_ATTEMPT_ID", attempt_id) == []
    assert phase_status(workspace, "P01")["state"] == "blocked"


def test_silent_worker_is_hung_sooner_with_max_silent_cycles(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "silent", "instructions": "[[fake:hang]]"},
    ], policy={"poll_interval": "0.2s", "max_cycles": 100, "max_silent_cycles": 2, "max_attempts": 1,
               "kill_grace": "0.3s"})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1
    assert "hung: no output for 2 poll cycles" in result.stdout
    assert "nothing came back from the model" in phase_status(workspace, "P01")["reason"]


def test_chatty_worker_is_still_hung_after_max_cycles(workspace: Path) -> None:
    # Output every 50 ms never resets max_cycles: it bounds the attempt's whole run, whatever the worker prints.
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "chatty", "instructions": "[[fake:chatty]]"},
    ], policy={"poll_interval": "0.2s", "max_cycles": 3, "max_silent_cycles": 2, "max_attempts": 1,
               "kill_grace": "0.3s"})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1
    assert "hung: still running after 3 poll cycles" in phase_status(workspace, "P01")["reason"]


def test_grandchild_holding_stdout_does_not_delay_completion(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "leaves a sleeper", "instructions": "[[fake:hold_stdout]]"},
    ], policy={"max_attempts": 1})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 0, result.stdout + result.stderr
    exit_record = json.loads((workspace / "tmp/PLAN-T/P01/1/exit.json").read_text())
    assert exit_record["exit_code"] == 0 and exit_record["stragglers"], "the sleeper was found and killed"
    assert exit_record["duration_s"] < 30, "completion came from the exit, not from EOF on the log"
    evidence = json.loads((workspace / "tmp/PLAN-T/P01/1/evidence.json").read_text())
    exit_check = next(check for check in evidence["checks"] if check["name"] == "exit")
    assert exit_check["status"] == "pass"
    assert "killed 1 process(es) it left running: sleep (pid " in exit_check["detail"]


def test_half_written_report_is_a_fail(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "dies mid-write", "instructions": "[[fake:half_report]]"},
    ], policy={"max_attempts": 1})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1
    evidence = json.loads((workspace / "tmp/PLAN-T/P01/1/evidence.json").read_text())
    assert evidence["verdict"] == "FAIL"
    # The half that was written still reads "Status: PASS": the worker's death decides, not its report.
    assert "killed by SIGKILL" in evidence["reason"]


def test_worker_ignoring_sigterm_is_killed_after_the_grace(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "stubborn", "instructions": "[[fake:ignore_term]]"},
    ], policy={"poll_interval": "0.2s", "max_cycles": 2, "max_attempts": 1, "kill_grace": "0.3s"})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1
    exit_record = json.loads((workspace / "tmp/PLAN-T/P01/1/exit.json").read_text())
    assert exit_record["signal"] == signal.SIGKILL


def test_crashing_worker_fails_with_the_signal_named(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "oom", "instructions": "[[fake:crash]]"},
    ], policy={"max_attempts": 1})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1
    assert "SIGKILL" in phase_status(workspace, "P01")["reason"]


def test_completion_is_found_by_polling_without_the_socket(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "stub", "title": "stub", "instructions": "[[fake:pass]]"},
    ])

    result = coord(workspace, "run", str(plan), "--no-socket")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "polling" in (workspace / "tmp/PLAN-T/P01/1/worker.log").read_text()


def test_prompt_over_128_kib_reaches_the_worker(workspace: Path, tmp_path: Path) -> None:
    record = tmp_path / "record"
    big = "[[fake:pass]]\n" + ("x" * 199 + "\n") * 1000
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "stub", "title": "big", "instructions": big},
    ], agents=fake_agent(FAKE_CODEX_RECORD_DIR=str(record)))

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 0, result.stderr
    [call] = [json.loads(p.read_text()) for p in record.glob("*.json")]
    assert big in call["stdin"]
    assert call["stdin"] == (workspace / "tmp/PLAN-T/P01/1/prompt.md").read_text()


def test_invalid_plan_is_refused_before_any_state_exists(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "stub", "title": "a", "instructions": "x", "depends_on": ["P99"]},
    ])

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 2
    assert "plans/PLAN-T.yaml:" in result.stderr and "P99" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (workspace / "tmp").exists()


def test_second_coordinator_exits_3_naming_the_holder(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "slow", "instructions": "[[fake:hang]]"},
    ])
    first = start_coord(workspace, "run", str(plan))
    try:
        wait_until(lambda: (workspace / "tmp/PLAN-T/P01/1/identity.json").exists())
        second = coord(workspace, "run", str(plan))
        assert second.returncode == 3
        assert f"pid {first.pid}" in second.stderr
    finally:
        stop = coord(workspace, "stop")
        assert stop.returncode == 0, stop.stderr
        assert first.wait(timeout=30) == 1


def test_ctrl_c_detaches_and_a_new_run_reattaches_without_relaunching(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "slow", "instructions": "[[fake:slow]]"},
        {"id": "P02", "kind": "verify", "title": "next", "instructions": "[[fake:pass]]"},
    ], agents=fake_agent(FAKE_CODEX_SLOW_SECONDS="3"))
    first = start_coord(workspace, "run", str(plan))
    wait_until(lambda: (workspace / "tmp/PLAN-T/P01/1/identity.json").exists())
    worker_pid = json.loads((workspace / "tmp/PLAN-T/P01/1/identity.json").read_text())["worker_pid"]

    os.killpg(first.pid, signal.SIGINT)  # what a terminal sends to its foreground job on Ctrl-C
    out, _ = first.communicate(timeout=10)

    assert first.returncode == 130
    assert "coord run plans/PLAN-T.yaml` reattaches" in out
    os.kill(worker_pid, 0)  # the worker survived the detach
    second = coord(workspace, "run", str(plan))
    assert second.returncode == 0, second.stdout + second.stderr
    assert "attempt 1 reattached" in second.stdout
    assert len(db_rows(workspace, "SELECT * FROM attempts WHERE phase_id='P01'")) == 1


def test_coordinator_killed_while_worker_finishes_loses_no_result(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "slow", "instructions": "[[fake:slow]]"},
    ], agents=fake_agent(FAKE_CODEX_SLOW_SECONDS="1"))
    first = start_coord(workspace, "run", str(plan))
    wait_until(lambda: (workspace / "tmp/PLAN-T/P01/1/identity.json").exists())

    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    wait_until(lambda: (workspace / "tmp/PLAN-T/P01/1/exit.json").exists())

    between = phase_status(workspace, "P01")  # nobody has judged it yet, and status says so
    assert (between["state"], between["pid"]) == ("ended", None)
    assert between["reason"] == ("its worker ended (exit code 0) while no coordinator ran; "
                                 "`coord run plans/PLAN-T.yaml` judges it")
    assert status(workspace)["totals"]["running"] == 0

    second = coord(workspace, "run", str(plan))
    assert second.returncode == 0, second.stdout + second.stderr
    assert "ended while no coordinator watched" in second.stdout
    assert len(db_rows(workspace, "SELECT * FROM attempts")) == 1
    third = coord(workspace, "run", str(plan))
    assert third.returncode == 0
    assert [e["type"] for e in events(workspace)].count("attempt_ended") == 1


def test_live_worker_missing_from_a_deleted_store_is_adopted_not_launched_twice(
        workspace: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    os.mkfifo(go)
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "waits", "instructions": "[[fake:barrier]]"},
    ], agents=fake_agent(FAKE_CODEX_BARRIER=str(go)))
    first = start_coord(workspace, "run", str(plan))
    wait_until(lambda: (workspace / "tmp/PLAN-T/P01/1/identity.json").exists())
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    for name in ("coord.db", "coord.db-wal", "coord.db-shm"):
        (workspace / "tmp" / name).unlink(missing_ok=True)

    second = start_coord(workspace, "run", str(plan))
    wait_until(lambda: any("adopting it instead of launching" in event["message"] for event in events(workspace)))
    with open(go, "w") as barrier:  # now let the first (and only) worker finish
        barrier.write("go\n")
    out, err = second.communicate(timeout=60)

    assert second.returncode == 0, out + err
    rows = db_rows(workspace, "SELECT number, state FROM attempts")
    assert [(row["number"], row["state"]) for row in rows] == [(1, "passed")]
    pid_lines = (workspace / "tmp/PLAN-T/worker-pids.txt").read_text().splitlines()
    assert len(pid_lines) == 1, "a second worker was launched for P01"


def test_supervisor_killed_means_lost_attempt_and_a_new_one(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "x", "instructions": "[[fake:hang,pass]]"},
    ])
    first = start_coord(workspace, "run", str(plan))
    wait_until(lambda: (workspace / "tmp/PLAN-T/P01/1/identity.json").exists())
    supervisor_pid = json.loads((workspace / "tmp/PLAN-T/P01/1/identity.json").read_text())["supervisor_pid"]
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    os.kill(supervisor_pid, signal.SIGKILL)

    second = coord(workspace, "run", str(plan))

    assert second.returncode == 0, second.stdout + second.stderr
    rows = db_rows(workspace, "SELECT number, state FROM attempts ORDER BY number")
    assert [(r["number"], r["state"]) for r in rows] == [(1, "lost"), (2, "passed")]


def test_remediate_without_a_coordinator_runs_to_a_verdict(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "x", "instructions": "[[fake:fail,fail,pass]]"},
        {"id": "P02", "kind": "verify", "title": "after", "instructions": "[[fake:pass]]"},
    ])
    assert coord(workspace, "run", str(plan)).returncode == 1
    assert phase_status(workspace, "P01")["state"] == "blocked"

    result = coord(workspace, "remediate", "P01", "--note", "look at the report")

    assert result.returncode == 0, result.stdout + result.stderr
    assert phase_status(workspace, "P01")["state"] == "passed"
    assert "look at the report" in (workspace / "tmp/PLAN-T/P01/3/prompt.md").read_text()
    assert phase_status(workspace, "P02")["state"] == "pending"
    again = coord(workspace, "run", str(plan))
    assert again.returncode == 0 and phase_status(workspace, "P02")["state"] == "passed"


def test_remediate_that_fails_exits_1(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "x", "instructions": "[[fake:fail]]"},
    ], policy={"max_attempts": 1})
    assert coord(workspace, "run", str(plan)).returncode == 1

    result = coord(workspace, "remediate", "P01")

    assert result.returncode == 1
    assert len(db_rows(workspace, "SELECT * FROM attempts")) == 2


def test_remediate_goes_through_the_running_coordinator(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "fails once", "instructions": "[[fake:fail,pass]]"},
        {"id": "P02", "kind": "impl", "title": "long", "instructions": "[[fake:slow]]", "depends_on": []},
    ], policy={"max_attempts": 1}, agents=fake_agent(FAKE_CODEX_SLOW_SECONDS="4"))
    running = start_coord(workspace, "run", str(plan), "--max-parallel", "2")
    try:
        wait_until(lambda: phase_state(workspace, "P01") == "blocked")

        result = coord(workspace, "remediate", "P01")

        assert result.returncode == 0, result.stderr
        assert f"launched by the running coordinator (pid {running.pid})" in result.stdout
        assert running.wait(timeout=60) == 0
    finally:
        if running.poll() is None:
            coord(workspace, "stop")
            running.wait(timeout=30)
    rows = db_rows(workspace, "SELECT number, state FROM attempts WHERE phase_id='P01' ORDER BY number")
    assert [(r["number"], r["state"]) for r in rows] == [(1, "failed"), (2, "passed")]


def test_stop_one_phase_blocks_it_and_kills_its_group(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "hangs", "instructions": "[[fake:hang]]"},
    ])
    running = start_coord(workspace, "run", str(plan))
    wait_until(lambda: (workspace / "tmp/PLAN-T/P01/1/identity.json").exists())

    result = coord(workspace, "stop", "P01")

    assert result.returncode == 0 and "stopping P01" in result.stdout
    assert running.wait(timeout=30) == 1
    phase = phase_status(workspace, "P01")
    assert phase["state"] == "blocked" and "stopped by a person" in phase["reason"]


def test_logs_prints_the_worker_log(workspace: Path) -> None:
    plan = write_plan(workspace, [{"id": "P01", "kind": "stub", "title": "x", "instructions": "[[fake:pass]]"}])
    assert coord(workspace, "run", str(plan)).returncode == 0

    result = coord(workspace, "logs", "P01", "-f")

    assert result.returncode == 0
    assert '"type":"thread.started"' in result.stdout.replace(" ", "")


def test_demo_plan_passes_with_one_remediation(workspace: Path) -> None:
    shutil.copytree(REPO_ROOT / "plans", workspace / "plans")

    result = coord(workspace, "run", "plans/PLAN-DEMO.yaml")

    assert result.returncode == 0, result.stdout + result.stderr
    report = status(workspace)
    assert [p["state"] for p in report["phases"]] == ["passed"] * 4
    assert report["totals"]["remediations"] == 1
    assert phase_status(workspace, "P03")["attempts"] == 2
    human = coord(workspace, "status")
    assert "1 remediation" in human.stdout


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


def test_resume_policy_remediates_in_the_same_agent_session(workspace: Path, tmp_path: Path) -> None:
    record = tmp_path / "record"
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "x", "instructions": "[[fake:fail,pass]]"},
    ], policy={"remediation": "resume"}, agents=fake_agent(FAKE_CODEX_RECORD_DIR=str(record)))

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 0, result.stdout + result.stderr
    first, second = (json.loads((workspace / f"tmp/PLAN-T/P01/{n}/summary.json").read_text()) for n in (1, 2))
    assert second["session_id"] == first["session_id"]
    calls = [json.loads(p.read_text()) for p in record.glob("*.json")]
    resumed = [c for c in calls if "resume" in c["argv"]]
    assert len(resumed) == 1 and first["session_id"] in resumed[0]["argv"]
    # codex reports thread-cumulative usage; each attempt keeps only its own tokens
    assert 0 < second["input_tokens"] <= first["input_tokens"] * 2
    assert second["cumulative_usage"]["input_tokens"] == first["input_tokens"] + second["input_tokens"]


def test_remediate_of_an_unknown_phase_is_a_usage_error(workspace: Path) -> None:
    plan = write_plan(workspace, [{"id": "P01", "kind": "stub", "title": "x", "instructions": "[[fake:pass]]"}])
    assert coord(workspace, "run", str(plan)).returncode == 0

    unknown = coord(workspace, "remediate", "P99")

    assert unknown.returncode == 2 and "no phase 'P99'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_plan_edit_that_would_orphan_a_running_worker_is_refused(workspace: Path) -> None:
    phases = [
        {"id": "P01", "kind": "impl", "title": "hangs", "instructions": "[[fake:hang]]"},
        {"id": "P02", "kind": "impl", "title": "later", "instructions": "[[fake:pass]]"},
    ]
    plan = write_plan(workspace, phases)
    first = start_coord(workspace, "run", str(plan))
    wait_until(lambda: (workspace / "tmp/PLAN-T/P01/1/identity.json").exists())
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    write_plan(workspace, phases[1:])

    edited = coord(workspace, "run", str(plan))

    assert edited.returncode == 2
    assert "plan changed: P01 removed" in edited.stderr
    stop = coord(workspace, "stop")
    assert stop.returncode == 0 and "stopping P01" in stop.stdout
    wait_until(lambda: (workspace / "tmp/PLAN-T/P01/1/exit.json").exists())


def test_leftover_attempt_folders_of_a_deleted_store_are_not_trusted(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "x", "instructions": "[[fake:pass]]", "verify": [VERIFY_FIXED]},
    ], agents=fake_agent(FAKE_CODEX_WRITE="fixed.txt=yes"))
    assert coord(workspace, "run", str(plan)).returncode == 0
    for name in ("coord.db", "coord.db-wal", "coord.db-shm"):
        (workspace / "tmp" / name).unlink(missing_ok=True)
    old_identity = json.loads((workspace / "tmp/PLAN-T/P01/1/identity.json").read_text())

    again = coord(workspace, "run", str(plan))

    assert again.returncode == 0, again.stdout + again.stderr
    stale = [p.name for p in (workspace / "tmp/PLAN-T/P01").iterdir() if ".stale-" in p.name]
    assert len(stale) == 1, "the old attempt folder was set aside, not reused"
    [row] = db_rows(workspace, "SELECT attempt_id, state FROM attempts")
    assert row["state"] == "passed" and row["attempt_id"] != old_identity["attempt_id"]
    for name in ("identity.json", "exit.json"):
        record = json.loads((workspace / "tmp/PLAN-T/P01/1" / name).read_text())
        assert record["attempt_id"] == row["attempt_id"]


def test_worker_exit_code_survives_an_ignored_sigchld(workspace: Path) -> None:
    """A launcher that ignores SIGCHLD must not turn a failing worker into exit code 0."""
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "fails", "agent": "shell", "script": ["exit 3"]},
    ], policy={"max_attempts": 1}, checks={"report": False, "completed": False})
    wrapper = ["-c", "import os, signal, sys; signal.signal(signal.SIGCHLD, signal.SIG_IGN); "
                     "os.execv(sys.executable, [sys.executable, '-m', 'coordinator', 'run', sys.argv[1]])",
               str(plan)]
    import subprocess
    import sys

    result = subprocess.run([sys.executable, *wrapper], cwd=workspace, capture_output=True, text=True, timeout=60)

    assert result.returncode == 1, result.stdout + result.stderr
    assert json.loads((workspace / "tmp/PLAN-T/P01/1/exit.json").read_text())["exit_code"] == 3


def test_budget_stops_launching_and_says_why(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "stub", "title": "a", "instructions": "[[fake:pass]]"},
        {"id": "P02", "kind": "impl", "title": "b", "instructions": "[[fake:pass]]"},
        {"id": "P03", "kind": "verify", "title": "c", "instructions": "[[fake:pass]]"},
    ], budget={"max_tokens": 1000})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1
    assert "token budget reached" in result.stdout and "launching nothing more" in result.stdout
    states = {p["id"]: p["state"] for p in status(workspace)["phases"]}
    assert states == {"P01": "passed", "P02": "pending", "P03": "pending"}


def test_dangerous_profile_prints_a_banner_and_only_then_bypasses_the_sandbox(workspace: Path, tmp_path: Path) -> None:
    record = tmp_path / "record"
    agents = {
        "fake": {"base": "codex", "binary": str(REPO_ROOT / "tests" / "fakes" / "codex"), "sandbox": "workspace-write",
                 "env": {"FAKE_CODEX_RECORD_DIR": str(record)}},
        "yolo": {"base": "codex", "binary": str(REPO_ROOT / "tests" / "fakes" / "codex"),
                 "sandbox": "danger-full-access", "dangerous": True, "env": {"FAKE_CODEX_RECORD_DIR": str(record)}},
    }
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "stub", "title": "safe", "instructions": "[[fake:pass]]"},
        {"id": "P02", "kind": "impl", "title": "unsafe", "instructions": "[[fake:pass]]", "agent": "yolo"},
    ], agents=agents)

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING: agent profile 'yolo' runs codex with --dangerously-bypass-approvals-and-sandbox" in result.stdout
    calls = {call["env"].get("COORD_PHASE_ID"): call["argv"]
             for call in (json.loads(p.read_text()) for p in record.glob("*.json"))}
    assert "--dangerously-bypass-approvals-and-sandbox" in calls["P02"]
    assert "--dangerously-bypass-approvals-and-sandbox" not in calls["P01"]
    assert calls["P01"][calls["P01"].index("-s") + 1] == "workspace-write"


def test_huge_worker_log_is_capped_keeping_head_and_tail_without_losing_appends(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "spew", "instructions": "[[fake:spew]]"},
    ], policy={"max_attempts": 1, "log_cap_mib": 1},
        agents=fake_agent(FAKE_CODEX_SPEW_BYTES=str(30 * 1024 * 1024)))

    result = coord(workspace, "run", str(plan), "--headless")

    exit_record = json.loads((workspace / "tmp/PLAN-T/P01/1/exit.json").read_text())
    if exit_record["log_cap"]["not_enforced"]:
        pytest.skip(f"log cap unsupported here: {exit_record['log_cap']['not_enforced']}")
    assert result.returncode == 0, result.stdout + result.stderr
    log = workspace / "tmp/PLAN-T/P01/1/worker.log"
    assert log.stat().st_size <= 1024 * 1024
    assert exit_record["log_cap"]["dropped_bytes"] > 25 * 1024 * 1024
    head, marker, tail = log.read_text().partition(" MiB of worker output dropped here; the log is capped at 1 MiB]\n")
    assert marker, "no truncation marker in the log"
    assert head.startswith('{"type":"thread.started"')
    # Every event appended after the cut is there, in order: the trim lost none of the worker's writes.
    item_numbers = list(dict.fromkeys(  # item.started and item.completed share an id
        int(json.loads(line)["item"]["id"].split("_")[1])
        for line in tail.splitlines()[1:] if line.startswith('{"type":"item.')))
    assert len(item_numbers) > 50
    assert item_numbers == list(range(item_numbers[0], item_numbers[0] + len(item_numbers)))
    assert '"type":"turn.completed"' in tail.splitlines()[-1]
    assert phase_status(workspace, "P01")["session_id"]


def test_corrupt_store_exits_4_and_is_never_recreated(workspace: Path) -> None:
    plan = write_plan(workspace, [{"id": "P01", "kind": "stub", "title": "x", "instructions": "[[fake:pass]]"}])
    (workspace / "tmp").mkdir()
    garbage = os.urandom(4096)
    (workspace / "tmp" / "coord.db").write_bytes(garbage)

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 4
    assert result.stderr.count("\n") == 1 and "coord.db: cannot" in result.stderr and "state store" in result.stderr
    assert "move it aside" in result.stderr and "Traceback" not in result.stderr
    assert (workspace / "tmp" / "coord.db").read_bytes() == garbage
    assert not (workspace / "tmp" / "PLAN-T").exists(), "nothing was launched"


def test_store_held_by_another_process_delays_writes_without_losing_them(workspace: Path, tmp_path: Path) -> None:
    import sqlite3
    import time

    go = tmp_path / "go"
    os.mkfifo(go)
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "waits", "instructions": "[[fake:barrier]]"},
    ], agents=fake_agent(FAKE_CODEX_BARRIER=str(go)))
    run = start_coord(workspace, "run", str(plan))
    wait_until(lambda: phase_state(workspace, "P01") == "running")

    # A person's sqlite3 shell inside a write transaction while the worker finishes.
    holder = sqlite3.connect(workspace / "tmp" / "coord.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    with open(go, "w") as barrier:
        barrier.write("go\n")
    time.sleep(2.0)  # the injected fault: the lock is held this long
    holder.execute("COMMIT")
    holder.close()
    out, err = run.communicate(timeout=60)

    assert run.returncode == 0, out + err
    assert "Traceback" not in err and "database is locked" not in out + err
    assert phase_status(workspace, "P01")["state"] == "passed"


def test_missing_agent_program_is_refused_before_anything_runs(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "stub", "title": "x", "instructions": "[[fake:pass]]"},
        {"id": "P02", "kind": "impl", "title": "y", "instructions": "[[fake:pass]]", "agent": "claude"},
    ], agents={"fake": {"base": "codex", "binary": "/nonexistent/codex"}})

    result = coord(workspace, "run", str(plan), env={"PATH": "/usr/bin:/bin"})

    assert result.returncode == 2
    assert "plans/PLAN-T.yaml: agents.fake.binary: '/nonexistent/codex' is not an executable file" in result.stderr
    assert "agents.claude.binary: 'claude' was not found on PATH" in result.stderr
    assert "nothing was launched" in result.stderr
    assert not (workspace / "tmp" / "PLAN-T").exists()


def test_agent_program_gone_at_launch_fails_the_attempt_saying_why(workspace: Path) -> None:
    program = workspace / "bin" / "codex"
    program.parent.mkdir()
    shutil.copy(REPO_ROOT / "tests" / "fakes" / "codex", program)
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "removes the agent", "agent": "shell", "script": ["rm bin/codex"]},
        {"id": "P02", "kind": "impl", "title": "needs it", "instructions": "[[fake:pass]]"},
    ], agents={"fake": {"base": "codex", "binary": str(program)}}, policy={"max_attempts": 1},
        checks={"report": False, "completed": False})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1
    reason = phase_status(workspace, "P02")["reason"]
    assert f"the worker did not start: cannot start '{program}': [Errno 2] No such file or directory" in reason
    assert json.loads((workspace / "tmp/PLAN-T/P02/1/exit.json").read_text())["exit_code"] == 127


def test_two_coordinators_started_at_the_same_instant_one_wins_every_time(tmp_path: Path) -> None:
    import subprocess
    import sys

    racer = ("import os, sys, time\n"
             "while not os.path.exists(sys.argv[1]): time.sleep(0.001)\n"
             "os.execv(sys.executable, [sys.executable, '-m', 'coordinator', 'run', sys.argv[2], '--headless'])\n")
    for round_number in range(3):
        workspace = tmp_path / f"ws{round_number}"
        workspace.mkdir()
        # The winner's worker hangs for ten 0.2 s cycles, so the loser always meets a held workspace.
        plan = write_plan(workspace, [{"id": "P01", "kind": "stub", "title": "x", "instructions": "[[fake:hang]]"}],
                          policy={"poll_interval": "0.2s", "max_cycles": 10, "max_attempts": 1,
                                  "kill_grace": "0.2s"})
        go = tmp_path / f"go{round_number}"
        racers = [subprocess.Popen([sys.executable, "-c", racer, str(go), str(plan)], cwd=workspace,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=coord_env(workspace, None)) for _ in range(2)]
        go.touch()
        results = [(process.wait(timeout=60), *process.communicate()) for process in racers]

        assert sorted(code for code, _, _ in results) == [1, 3], results  # one ran (its worker hung), one refused
        refused = next(err for code, _, err in results if code == 3)
        assert "another coordinator holds" in refused and "`coord status`" in refused, refused
        assert len(db_rows(workspace, "SELECT * FROM attempts")) == 1


def test_socket_works_under_a_very_deep_workspace(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60) / ("f" * 60)
    deep.mkdir(parents=True)
    plan = write_plan(deep, [{"id": "P01", "kind": "stub", "title": "x", "instructions": "[[fake:pass]]"}])
    assert len(str(deep)) > 120

    result = coord(deep, "run", str(plan), "--headless")

    assert result.returncode == 0, result.stdout + result.stderr
    log = (deep / "tmp/PLAN-T/P01/1/worker.log").read_text()
    assert "polling" not in log, "the supervisor's push reached the coordinator"


def test_stopped_worker_is_declared_hung_and_killed(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "frozen", "instructions": "[[fake:slow]]"},
    ], policy={"poll_interval": "0.2s", "max_cycles": 100, "max_silent_cycles": 3, "max_attempts": 1,
               "kill_grace": "0.5s"}, agents=fake_agent(FAKE_CODEX_SLOW_SECONDS="60"))
    run = start_coord(workspace, "run", str(plan), "--headless")
    wait_until(lambda: (workspace / "tmp/PLAN-T/P01/1/identity.json").exists())
    worker_pid = json.loads((workspace / "tmp/PLAN-T/P01/1/identity.json").read_text())["worker_pid"]
    os.kill(worker_pid, signal.SIGSTOP)

    out, err = run.communicate(timeout=60)

    assert run.returncode == 1, out + err
    assert "hung: no output for 3 poll cycles" in phase_status(workspace, "P01")["reason"]
    exit_record = json.loads((workspace / "tmp/PLAN-T/P01/1/exit.json").read_text())
    assert exit_record["stop_request"] == "hung" and exit_record["signal"] in (signal.SIGTERM, signal.SIGKILL)


def test_a_stopped_coordinator_counts_its_pause_as_one_poll_cycle(workspace: Path) -> None:
    # Hung means observed cycles, not wall time: ten cycles' worth of a stopped coordinator add one cycle.
    import time

    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "silent", "instructions": "[[fake:hang]]"},
    ], policy={"poll_interval": "0.2s", "max_cycles": 100, "max_silent_cycles": 3, "max_attempts": 1,
               "kill_grace": "0.3s"})
    run = start_coord(workspace, "run", str(plan), "--headless")
    wait_until(lambda: phase_state(workspace, "P01") == "running")
    os.kill(run.pid, signal.SIGSTOP)
    time.sleep(2.0)  # the injected fault: the coordinator is stopped for ten poll cycles
    os.kill(run.pid, signal.SIGCONT)
    out, err = run.communicate(timeout=60)

    assert run.returncode == 1, out + err
    cycles = [event["data"]["cycle"] for event in events(workspace) if event["type"] == "poll_cycle"]
    assert cycles == list(range(1, len(cycles) + 1)) and len(cycles) <= 5, cycles
    assert "hung: no output for 3 poll cycles" in phase_status(workspace, "P01")["reason"]


def test_a_full_disk_under_stdout_is_one_line_not_a_crash(workspace: Path) -> None:
    import subprocess
    import sys

    plan = write_plan(workspace, [{"id": "P01", "kind": "stub", "title": "x", "instructions": "[[fake:pass]]"}])
    assert coord(workspace, "run", str(plan)).returncode == 0

    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "coordinator", "status"], cwd=workspace, stdout=full,
                                stderr=subprocess.PIPE, text=True, timeout=60, env=coord_env(workspace, None))

    assert result.returncode == 1
    assert result.stderr == "coord: cannot write standard output: No space left on device\n"
    assert not (workspace / "tmp" / "crashes").exists()


def test_disk_full_under_the_store_exits_4_and_a_later_run_loses_nothing(workspace: Path) -> None:
    import subprocess
    import sys

    plan = write_plan(workspace, [
        {"id": f"P0{n}", "kind": "impl", "title": "x" * 200, "instructions": "[[fake:slow]]", "depends_on": []}
        for n in range(1, 4)
    ], agents=fake_agent(FAKE_CODEX_SLOW_SECONDS="2"))
    # RLIMIT_FSIZE makes every write past 200 KiB fail (EFBIG): the store's WAL, one commit per 0.2 s poll cycle
    # of each worker, passes that well before the workers end.
    full = subprocess.run(
        ["/bin/sh", "-c", 'ulimit -f 200; exec "$0" -m coordinator run "$1" --headless', sys.executable, str(plan)],
        cwd=workspace, capture_output=True, text=True, timeout=90, env=coord_env(workspace, None))

    assert full.returncode == 4, full.stdout + full.stderr
    assert "cannot write the state store" in full.stderr and "picks up their results" in full.stderr
    assert "Traceback" not in full.stderr

    again = coord(workspace, "run", str(plan), "--headless")

    assert again.returncode == 0, again.stdout + again.stderr
    attempts = db_rows(workspace, "SELECT phase_id, number, state FROM attempts ORDER BY phase_id, number")
    launched = [line.split()[0] for line in (workspace / "tmp/PLAN-T/worker-pids.txt").read_text().splitlines()]
    assert sorted(launched) == sorted(row["phase_id"] for row in attempts), "every launch is recorded once"
    assert all(row["state"] in ("passed", "lost") for row in attempts)
    assert all(phase["state"] == "passed" for phase in status(workspace)["phases"])


def test_worker_that_edits_protected_tests_is_judged_fail_even_when_verification_passes(workspace: Path) -> None:
    (workspace / "tests").mkdir()
    (workspace / "tests" / "test_calc.py").write_text("assert add(2, 3) == 5\n")
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "cheats", "instructions": "[[fake:pass]]",
         "protected": ["tests/*.py"], "verify": [VERIFY_FIXED]},
    ], policy={"max_attempts": 1},
        agents=fake_agent(FAKE_CODEX_WRITE="fixed.txt=yes\ntests/test_calc.py=pass  # weakened"))

    prompt = coord(workspace, "render", str(plan), "P01")
    result = coord(workspace, "run", str(plan))

    assert "## Files you must not change" in prompt.stdout and "- `tests/*.py`" in prompt.stdout
    assert result.returncode == 1
    evidence = json.loads((workspace / "tmp/PLAN-T/P01/1/evidence.json").read_text())
    checks = {check["name"]: check for check in evidence["checks"]}
    assert checks["verify[0]"]["status"] == "pass"
    assert checks["protected"]["status"] == "fail"
    assert evidence["reason"] == "the worker changed protected files: tests/test_calc.py (changed)"


def test_protected_files_left_alone_pass_the_check(workspace: Path) -> None:
    (workspace / "tests").mkdir()
    (workspace / "tests" / "test_calc.py").write_text("assert add(2, 3) == 5\n")
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "honest", "instructions": "[[fake:pass]]",
         "protected": ["tests/*.py"], "verify": [VERIFY_FIXED]},
    ], agents=fake_agent(FAKE_CODEX_WRITE="fixed.txt=yes"))

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 0, result.stdout + result.stderr
    evidence = json.loads((workspace / "tmp/PLAN-T/P01/1/evidence.json").read_text())
    protected_check = next(check for check in evidence["checks"] if check["name"] == "protected")
    assert (protected_check["status"], protected_check["detail"]) == ("pass", "1 protected file(s) unchanged")


def test_hung_worker_whose_last_line_is_odd_json_is_still_stopped(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "odd", "agent": "shell",
         "script": ["""printf '{"type":"turn.failed","error":"boom"}\\n'; sleep 30"""]},
    ], policy={"poll_interval": "0.2s", "max_cycles": 3, "max_attempts": 1, "kill_grace": "0.3s"},
        checks={"report": False, "completed": False})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1, result.stdout + result.stderr
    assert 'its last output: {"type":"turn.failed","error":"boom"}' in phase_status(workspace, "P01")["reason"]


def test_a_passed_phase_does_not_need_its_agent_program_any_more(workspace: Path) -> None:
    program = workspace / "bin" / "old-codex"
    program.parent.mkdir()
    shutil.copy(REPO_ROOT / "tests" / "fakes" / "codex", program)
    first = [{"id": "P01", "kind": "stub", "title": "x", "instructions": "[[fake:pass]]", "agent": "old"}]
    agents = {"old": {"base": "codex", "binary": str(program)}}
    plan = write_plan(workspace, first, agents=agents)
    assert coord(workspace, "run", str(plan)).returncode == 0
    program.unlink()

    plan = write_plan(workspace, [*first, {"id": "P02", "kind": "impl", "title": "y", "instructions": "[[fake:pass]]"}],
                      agents=agents)
    result = coord(workspace, "run", str(plan))

    assert result.returncode == 0, result.stdout + result.stderr
    assert [row["phase_id"] for row in db_rows(workspace, "SELECT phase_id FROM attempts ORDER BY rowid")] == [
        "P01", "P02"]
