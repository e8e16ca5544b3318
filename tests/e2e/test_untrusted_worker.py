"""A worker is untrusted: whatever it deletes, replaces or links in the workspace, coord keeps every recorded
attempt, verdict and event, refuses a second coordinator, never writes through a link out of the workspace, and
judges a report or marker that is such a link as a FAIL of that check (docs/reliability.md, section 2.8).

The workers here are the built-in ``shell`` agent running a phase's ``script`` lines: each misbehaves the way
agents do (``rm -rf tmp``, links left behind), and exits 0.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import (
    coord,
    db_rows,
    phase_state,
    processes_with_cookie,
    start_coord,
    status,
    store_file,
    wait_until,
)

pytestmark = pytest.mark.slow


def shell_plan(workspace: Path, phases: list[dict[str, Any]]) -> Path:
    """A plan of shell-agent phases whose report and marker are written by the script (checks all on)."""
    for phase in phases:
        phase.setdefault("kind", "impl")
        phase.setdefault("title", phase["id"])
        script = list(phase.pop("misbehave", []))
        phase["script"] = script + [
            'mkdir -p reports .completed',
            f'printf "# {phase["id"]}\\n\\nStatus: PASS\\n" > reports/{phase["id"]}.md',
            f'printf "Phase: {phase["id"]}\\nCompleted: 2026-12-01 10:00\\nVerification: done\\n"'
            f' > .completed/{phase["id"]}.md',
        ]
    plan = {"plan": "PLAN-U", "title": "untrusted", "agent": "shell",
            "policy": {"poll_interval": "0.2s", "max_cycles": 100, "max_attempts": 1},
            "artifacts": {"report": "reports/{{ phase.id }}.md", "completed": ".completed/{{ phase.id }}.md"},
            "phases": phases}
    path = workspace / "plans" / "PLAN-U.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(plan, sort_keys=False), encoding="utf-8")
    return path.relative_to(workspace)


def events_in_store(workspace: Path) -> list[str]:
    return [row["type"] for row in db_rows(workspace, "SELECT type FROM events WHERE plan_id='PLAN-U' ORDER BY seq")]


def test_a_worker_that_deletes_tmp_loses_coord_nothing(workspace: Path) -> None:
    plan = shell_plan(workspace, [
        {"id": "P01"},
        {"id": "P02", "misbehave": ["rm -rf tmp 2>/dev/null; true"]},  # races coord re-creating it
        {"id": "P03"},
    ])

    result = coord(workspace, "run", str(plan), "--headless")

    assert result.returncode == 0, result.stdout + result.stderr
    report = status(workspace, "PLAN-U")
    assert [phase["state"] for phase in report["phases"]] == ["passed"] * 3
    assert report["totals"]["attempts"] == 3
    assert "verdict_reached" in events_in_store(workspace)
    again = coord(workspace, "run", str(plan), "--headless")
    assert again.returncode == 0 and "3/3 phases passed" in again.stdout
    assert len(db_rows(workspace, "SELECT * FROM attempts")) == 3, "nothing was launched again"
    assert store_file(workspace).exists() and not store_file(workspace).is_relative_to(workspace)


def test_a_second_coordinator_is_refused_though_the_worker_deleted_tmp(workspace: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    os.mkfifo(go)
    plan = shell_plan(workspace, [{"id": "P01", "misbehave": [
        "rm -rf tmp 2>/dev/null; true", "touch deleted", f"read line < {go}"]}])
    first = start_coord(workspace, "run", str(plan), "--headless")
    try:
        wait_until(lambda: (workspace / "deleted").exists())

        second = coord(workspace, "run", str(plan), "--headless")

        assert second.returncode == 3, second.stdout + second.stderr
        assert "another coordinator holds" in second.stderr
    finally:
        with open(go, "w") as barrier:
            barrier.write("go\n")
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, out + err


def test_mirrors_replaced_by_links_are_never_written_through_and_the_run_says_so(
        workspace: Path, tmp_path: Path) -> None:
    outside_events, outside_pids = tmp_path / "outside-events", tmp_path / "outside-pids"
    outside_events.write_text("keep\n")
    outside_pids.write_text("keep\n")
    plan = shell_plan(workspace, [
        {"id": "P01", "misbehave": [f"ln -sf {outside_events} tmp/PLAN-U/events.jsonl",
                                    f"ln -sf {outside_pids} tmp/PLAN-U/worker-pids.txt"]},
        {"id": "P02"},
    ])

    result = coord(workspace, "run", str(plan), "--headless")

    assert result.returncode == 0, result.stdout + result.stderr
    assert outside_events.read_text() == "keep\n" and outside_pids.read_text() == "keep\n"
    mirror = workspace / "tmp" / "PLAN-U" / "events.jsonl"
    assert not mirror.is_symlink() and json.loads(mirror.read_text().splitlines()[-1])["type"] == "run_finished"
    assert "P02 PID: " in (workspace / "tmp" / "PLAN-U" / "worker-pids.txt").read_text()
    report = status(workspace, "PLAN-U")
    assert "tmp/PLAN-U/events.jsonl was replaced" in report["tampered"]
    shown = coord(workspace, "status", "PLAN-U")
    assert "tampered: tmp/PLAN-U/events.jsonl was replaced" in shown.stdout


@pytest.mark.parametrize("link", ["outside", "loop"])
def test_B10_a_report_linked_out_of_the_workspace_fails_its_check_and_wedges_nothing(
        workspace: Path, tmp_path: Path, link: str) -> None:
    """Worker output reached through a link out of the workspace is refused unread (I9)."""
    secret = tmp_path / "secret.md"
    secret.write_text("Status: PASS\n")
    target = str(secret) if link == "outside" else "P01.md"  # a link to itself: a loop
    plan = shell_plan(workspace, [{"id": "P01"}, {"id": "P02"}])
    phases = yaml.safe_load((workspace / plan).read_text())
    phases["phases"][0]["script"].append(f"ln -sf {target} reports/P01.md")
    (workspace / plan).write_text(yaml.safe_dump(phases, sort_keys=False))

    result = coord(workspace, "run", str(plan), "--headless")

    assert result.returncode == 1, result.stdout + result.stderr
    first = status(workspace, "PLAN-U")["phases"][0]
    expected = "resolves outside the workspace" if link == "outside" else "is a symlink loop"
    assert first["state"] == "blocked" and f"report reports/P01.md {expected}" in first["reason"]
    evidence = json.loads((workspace / "tmp/PLAN-U/P01/1/evidence.json").read_text())
    assert [c["status"] for c in evidence["checks"] if c["name"] == "report"] == ["fail"]
    # Nothing is stuck: validation and the next run work, and judge the same way.
    assert coord(workspace, "validate", str(plan)).returncode == 0
    again = coord(workspace, "run", str(plan), "--headless")
    assert again.returncode == 1 and "nothing was launched" not in again.stderr


def test_an_attempt_folder_replaced_by_a_link_out_gets_nothing_written_outside(
        workspace: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    plan = shell_plan(workspace, [{"id": "P01", "misbehave": [
        "mv tmp/PLAN-U/P01/1 tmp/PLAN-U/P01/moved", f"ln -s {outside} tmp/PLAN-U/P01/1"]}])

    result = coord(workspace, "run", str(plan), "--headless")

    # The attempt's own records are out of the worker's reach, so it is judged as usual (its work passes) ...
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(outside.iterdir()) == [], "coord wrote through the link"
    # ... the supervisor's copies went into the folder it was given, wherever the worker moved it ...
    assert json.loads((workspace / "tmp/PLAN-U/P01/moved/exit.json").read_text())["exit_code"] == 0
    [attempt] = db_rows(workspace, "SELECT state FROM attempts")
    assert attempt["state"] == "passed"
    # ... and the run says what the worker did.
    tampered = status(workspace, "PLAN-U")["tampered"]
    assert tampered.startswith("tmp/PLAN-U/P01/1/") and "resolves outside the workspace" in tampered


def test_workspace_templates_linked_out_of_the_workspace_are_refused(workspace: Path, tmp_path: Path) -> None:
    outside = tmp_path / "impl.md.j2"
    outside.write_text("SECRET {{ phase.id }}\n")
    (workspace / "templates").mkdir()
    (workspace / "templates" / "impl.md.j2").symlink_to(outside)
    plan = shell_plan(workspace, [{"id": "P01"}])

    result = coord(workspace, "validate", str(plan))

    assert result.returncode == 2
    assert "templates/impl.md.j2 resolves outside the workspace; refused" in result.stderr
    rendered = coord(workspace, "render", str(plan), "P01")
    assert rendered.returncode == 2 and "SECRET" not in rendered.stdout


def test_the_plan_a_run_judges_by_is_the_plan_the_person_started(workspace: Path) -> None:
    plan = shell_plan(workspace, [
        # P01's worker rewrites the plan so that P02's failing verification becomes `true`, and a template.
        {"id": "P01", "misbehave": [
            "sed -i 's/exit 3/true/' plans/PLAN-U.yaml",
            "mkdir -p templates && echo 'FORGED {{ phase.id }}' > templates/impl.md.j2"]},
        {"id": "P02", "verify": ["sh -c 'exit 3'"]},
    ])
    (workspace / "templates").mkdir()
    (workspace / "templates" / "impl.md.j2").write_text("# {{ phase.id }}\nDo the phase.\n")

    result = coord(workspace, "run", str(plan), "--headless")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "plans/PLAN-U.yaml (or its templates) changed during the run; this run keeps judging by" in result.stdout
    second = status(workspace, "PLAN-U")["phases"][1]
    assert second["state"] == "blocked" and "exited 3" in second["reason"]
    assert "FORGED" not in (workspace / "tmp/PLAN-U/P02/1/prompt.md").read_text()

    remediated = coord(workspace, "remediate", "P02", "--plan", "PLAN-U")
    assert remediated.returncode == 1, remediated.stdout + remediated.stderr
    assert "changed since the run started; judging by the run's version" in remediated.stderr
    assert "FORGED" not in (workspace / "tmp/PLAN-U/P02/2/prompt.md").read_text()

    # A person's next `coord run` adopts the new version, and says what it changes.
    adopted = coord(workspace, "run", str(plan), "--headless")
    assert "this run adopts the new version; verification changed for P02" in adopted.stdout


def test_coord_stop_during_the_checks_ends_the_verification_and_blocks_the_phase(workspace: Path) -> None:
    plan = shell_plan(workspace, [{"id": "P01", "verify": [{"run": "sleep 300", "timeout": "10m"}]}])
    run = start_coord(workspace, "run", str(plan), "--headless")
    try:
        wait_until(lambda: phase_state(workspace, "P01") == "checking"
                   and (workspace / "tmp/PLAN-U/P01/1/verify-0.log").exists())

        stop = coord(workspace, "stop", "P01")

        assert stop.returncode == 0 and "stopping P01" in stop.stdout
        out, err = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 1, out + err
    first = status(workspace, "PLAN-U")["phases"][0]
    assert first["state"] == "blocked" and "stopped by a person" in first["reason"]


def test_a_verification_orphaned_by_a_killed_coordinator_is_ended_by_the_next(workspace: Path) -> None:
    import signal

    plan = shell_plan(workspace, [{"id": "P01", "verify": [{"run": "sleep 300", "timeout": "10m"}]}])
    first = start_coord(workspace, "run", str(plan), "--headless")
    wait_until(lambda: phase_state(workspace, "P01") == "checking")
    attempt_id = db_rows(workspace, "SELECT attempt_id FROM attempts")[0]["attempt_id"]
    wait_until(lambda: any(process.name() == "sleep"
                           for process in processes_with_cookie("COORD_ATTEMPT_ID", attempt_id)))
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    assert processes_with_cookie("COORD_ATTEMPT_ID", attempt_id), "the verify command outlived its coordinator"

    plan_doc = yaml.safe_load((workspace / plan).read_text())
    plan_doc["phases"][0]["verify"] = [{"run": "true"}]  # the person fixes the verification and runs again
    (workspace / plan).write_text(yaml.safe_dump(plan_doc, sort_keys=False))
    second = coord(workspace, "run", str(plan), "--headless")

    assert second.returncode == 0, second.stdout + second.stderr
    assert not processes_with_cookie("COORD_ATTEMPT_ID", attempt_id), "the orphaned verify command still runs"


def test_concurrent_remediations_without_a_coordinator_say_which_one_won(workspace: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    os.mkfifo(go)
    plan = shell_plan(workspace, [{"id": "P01", "verify": ["sh -c 'exit 3'"]}])
    assert coord(workspace, "run", str(plan), "--headless").returncode == 1
    doc = yaml.safe_load((workspace / plan).read_text())
    doc["phases"][0]["script"].insert(0, f"read line < {go}")  # the next worker waits for the test
    (workspace / plan).write_text(yaml.safe_dump(doc, sort_keys=False))
    assert coord(workspace, "run", str(plan), "--headless").returncode == 1  # adopts the edited plan

    first = start_coord(workspace, "remediate", "P01", "--plan", "PLAN-U")
    try:
        wait_until(lambda: len(db_rows(workspace, "SELECT 1 FROM attempts")) == 2)

        second = coord(workspace, "remediate", "P01", "--plan", "PLAN-U")

        assert second.returncode == 2, second.stdout + second.stderr
        assert f"a stand-alone `coord remediate P01` (pid {first.pid}) holds the workspace and won; this one " \
            "launched nothing" in second.stderr
    finally:
        with open(go, "w") as barrier:
            barrier.write("go\n")
        first.communicate(timeout=60)
    assert len(db_rows(workspace, "SELECT 1 FROM attempts")) == 2, "the loser launched nothing"


def test_a_worker_cannot_hide_changed_protected_files_by_rewriting_coords_copy_of_the_baseline(
        workspace: Path) -> None:
    """The hashes coord compares against live in the state directory; the attempt folder's copy is for people."""
    (workspace / "tests").mkdir()
    (workspace / "tests/test_core.py").write_text("assert False\n")
    plan = shell_plan(workspace, [{"id": "P01", "protected": ["tests/**"], "misbehave": [
        "printf 'assert True\\n' > tests/test_core.py",
        "rm -f tmp/PLAN-U/P01/1/baseline.json",
        "printf '{\"protected\": null, \"evidence\": {}}' > tmp/PLAN-U/P01/1/baseline.json",
    ]}])

    result = coord(workspace, "run", str(plan), "--headless")

    assert result.returncode == 1, result.stdout + result.stderr
    [phase] = status(workspace, "PLAN-U")["phases"]
    assert "the worker changed protected files: tests/test_core.py (changed)" in phase["reason"]


def test_protected_files_are_never_read_through_a_link(workspace: Path, tmp_path: Path) -> None:
    """A link inside a protected tree is recorded as the link; a protected folder that leads out of the workspace
    is a FAIL of the check, and nothing outside is read."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "test_secret.py").write_text("secret\n")
    (workspace / "tests").mkdir()
    (workspace / "tests/test_a.py").write_text("a\n")
    (workspace / "tests/elsewhere").symlink_to(outside)
    (workspace / "vendor").symlink_to(outside)
    plan = shell_plan(workspace, [
        {"id": "P01", "protected": ["tests/**/*.py", "tests/*"], "misbehave": ["rm tests/elsewhere",
                                                                              f"ln -s {tmp_path} tests/elsewhere"]},
        {"id": "P02", "protected": ["vendor/*.py"], "depends_on": []},
    ])

    result = coord(workspace, "run", str(plan), "--headless")

    assert result.returncode == 1, result.stdout + result.stderr
    first, second = status(workspace, "PLAN-U")["phases"]
    assert "the worker changed protected files: tests/elsewhere (changed)" in first["reason"], first["reason"]
    hashed = json.loads((workspace / "tmp/PLAN-U/P01/1/baseline.json").read_text())["protected"]["files"]
    assert sorted(hashed) == ["tests/elsewhere", "tests/test_a.py"]
    assert hashed["tests/elsewhere"] == f"symlink:{outside}"
    assert "cannot check the protected files" in second["reason"], second["reason"]
    assert "resolves outside the workspace" in second["reason"]


def test_a_report_and_marker_left_by_an_earlier_attempt_are_not_this_attempts_evidence(workspace: Path) -> None:
    """Attempt 1 writes its report and marker but its verification fails; attempt 2 writes nothing. The files
    attempt 1 left must not pass attempt 2."""
    plan = shell_plan(workspace, [{"id": "P01", "verify": ["test -f done.flag"]}])
    phases = yaml.safe_load((workspace / plan).read_text())
    phases["policy"]["max_attempts"] = 2
    # From attempt 2 on, the worker writes nothing at all (each script line runs in a shell of its own).
    phases["phases"][0]["script"] = [f'[ "$COORD_ATTEMPT" != 1 ] || {{ {line}; }}'
                                     for line in phases["phases"][0]["script"]]
    (workspace / plan).write_text(yaml.safe_dump(phases, sort_keys=False))

    result = coord(workspace, "run", str(plan), "--headless")

    assert result.returncode == 1, result.stdout + result.stderr
    rows = db_rows(workspace, "SELECT number, reason FROM attempts ORDER BY number")
    assert "verify[0]" in rows[0]["reason"] or "test -f done.flag" in rows[0]["reason"], rows[0]["reason"]
    assert rows[1]["reason"] == ("report reports/P01.md is left from before this attempt started: this attempt's "
                                 "worker did not write it"), rows[1]["reason"]
    evidence = json.loads((workspace / "tmp/PLAN-U/P01/2/evidence.json").read_text())
    marker = [c for c in evidence["checks"] if c["name"] == "completed"]
    assert marker[0]["status"] == "fail" and "is left from before this attempt started" in marker[0]["detail"]
