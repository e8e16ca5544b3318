"""The engine's loop against a fake executor and a fake clock (Honcho's seams): scheduling, the hang policy,
remediation up to the limit, lost attempts and the budget, in milliseconds and without one process.

The store, the judge, the prompts and the plan loader are the real ones; only where attempts run and what time it
is are stand-ins. The end-to-end suites (``tests/e2e/``) run the same rules through real supervisors.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from coordinator.engine.engine import Engine, RunOptions
from coordinator.errors import ExitStatus
from coordinator.paths import WorkspacePaths
from coordinator.plan.loader import load_plan
from coordinator.process.executor import AttemptHandle, StartError, UnrecordedAttempt
from coordinator.process.records import ExitRecord, Identity, SupervisorSpec
from coordinator.state.events import EngineEvent
from coordinator.state.store import Store
from coordinator.states import AttemptState, PhaseState


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeAttempt:
    spec: SupervisorSpec
    alive: bool = True
    exit: ExitRecord | None = None
    stops: list[str] = field(default_factory=list)


class FakeExecutor:
    """Attempts that run until the test ends them; ``fail_start`` makes the next starts fail."""

    def __init__(self) -> None:
        self.attempts: dict[str, FakeAttempt] = {}
        self.fail_start: str | None = None

    def start(self, spec: SupervisorSpec) -> Identity:
        if self.fail_start:
            raise StartError(self.fail_start)
        assert spec.attempt_id not in self.attempts, "an attempt was started twice"
        self.attempts[spec.attempt_id] = FakeAttempt(spec)
        return Identity(supervisor_pid=1, supervisor_start_ticks=1, worker_pid=2, boot_id="b",
                        started_at="2026-11-24T08:00:00+0000")

    def spawn(self, spec: SupervisorSpec) -> None:
        self.start(spec)

    def started(self, attempt_id: str) -> Identity | StartError | None:
        return Identity(supervisor_pid=1, supervisor_start_ticks=1, worker_pid=2, boot_id="b",
                        started_at="2026-11-24T08:00:00+0000")

    def identity(self, attempt: AttemptHandle) -> Identity | None:
        return Identity(1, 1, 2, "b", "t") if attempt.attempt_id in self.attempts else None

    def is_alive(self, attempt: AttemptHandle) -> bool:
        return self.attempts[attempt.attempt_id].alive

    def started_on_another_boot(self, attempt: AttemptHandle) -> bool:
        return False

    def result(self, attempt: AttemptHandle) -> ExitRecord | None:
        return self.attempts[attempt.attempt_id].exit

    def stop(self, attempt: AttemptHandle, reason: str) -> bool:
        fake = self.attempts[attempt.attempt_id]
        fake.stops.append(reason)
        self.end(fake, exit_code=None, signal=15, stop_request=reason)
        return True

    def kill_processes(self, attempt_id: str, grace: float) -> list[int]:
        return []

    def interrupt(self, attempt_id: str) -> list[int]:
        return []

    def poll_ended(self) -> bool:
        return False

    def unrecorded(self, phase_dir: Path, known: set[str]) -> list[UnrecordedAttempt]:
        return []

    def close(self) -> None:
        pass

    # --- what the test does to its attempts ---

    def running(self, phase_id: str) -> list[FakeAttempt]:
        return [fake for fake in self.attempts.values() if fake.spec.phase_id == phase_id and fake.exit is None
                and fake.alive]

    def end(self, fake: FakeAttempt, exit_code: int | None = 0, **extra: Any) -> None:
        fake.alive = False
        fake.exit = ExitRecord(attempt_id=fake.spec.attempt_id, exit_code=exit_code, ended_at="t", **extra)


def make_engine(tmp_path: Path, phases: list[dict[str, Any]], **options: Any) -> tuple[Engine, FakeExecutor,
                                                                                        FakeClock, list[EngineEvent]]:
    plan_file = tmp_path / "plans" / "PLAN-U.yaml"
    plan_file.parent.mkdir(parents=True)
    plan_file.write_text(yaml.safe_dump({
        "plan": "PLAN-U", "title": "unit", "agent": "shell",
        "policy": {"poll_interval": "5m", "max_cycles": 3, "max_attempts": 2},
        "checks": {"report": False, "completed": False},
        "phases": [{"kind": "impl", "title": p["id"], "script": ["true"], **p} for p in phases],
    }), encoding="utf-8")
    plan = load_plan(plan_file, tmp_path)
    executor, clock, events = FakeExecutor(), FakeClock(), []
    engine = Engine(plan, Store.open(WorkspacePaths(tmp_path)), RunOptions(use_socket=False, **options),
                    sink=events.append, executor=executor, clock=clock)
    engine.start()
    return engine, executor, clock, events


def settle(engine: Engine, clock: FakeClock, passes: int = 3) -> ExitStatus | None:
    """Run a few passes of the loop, a file-poll interval apart, each until the judge threads are idle (their
    verify commands are real, and fast); returns the run's exit status once it ends."""
    for _ in range(passes):
        clock.advance(engine.options.poll_fallback)
        result = engine.step()
        for _wait in range(400):
            if result is not None or not engine.state.judging:
                break
            time.sleep(0.005)
            result = engine.step()
        if result is not None:
            return result
    return None


def phase_state(engine: Engine, phase_id: str) -> PhaseState:
    record = engine.store.phase(engine.plan.id, phase_id)
    assert record is not None
    return record.state


def test_phases_start_in_dependency_order_and_never_beyond_max_parallel(tmp_path: Path) -> None:
    engine, executor, clock, _ = make_engine(
        tmp_path, [{"id": "P01", "depends_on": []}, {"id": "P02", "depends_on": ["P01"]},
                   {"id": "P03", "depends_on": []}, {"id": "P04", "depends_on": []}],
        max_parallel=2)
    assert settle(engine, clock) is None
    assert sorted(fake.spec.phase_id for fake in executor.attempts.values()) == ["P01", "P03"]
    executor.end(executor.running("P01")[0])
    settle(engine, clock)
    assert phase_state(engine, "P01") == PhaseState.PASSED
    assert sorted(fake.spec.phase_id for fake in executor.attempts.values()) == ["P01", "P02", "P03"]
    for phase_id in ("P02", "P03"):
        executor.end(executor.running(phase_id)[0])
    settle(engine, clock)
    executor.end(executor.running("P04")[0])
    assert settle(engine, clock) == ExitStatus.OK
    assert len(executor.attempts) == 4  # every phase once: nothing launched twice


def test_a_worker_still_running_after_max_cycles_is_stopped_as_hung_and_judged_fail(tmp_path: Path) -> None:
    engine, executor, clock, events = make_engine(tmp_path, [{"id": "P01"}])
    settle(engine, clock)
    [fake] = executor.running("P01")
    for _cycle in range(2):
        clock.advance(300)
        settle(engine, clock, passes=1)
    assert fake.stops == [] and engine.store.attempt(fake.spec.attempt_id).cycle == 2  # type: ignore[union-attr]
    clock.advance(300)
    settle(engine, clock, passes=1)  # cycle 3 of 3: hung
    assert fake.stops == ["hung"]
    settle(engine, clock)
    first = engine.store.attempts(engine.plan.id, "P01")[0]
    assert first.state == AttemptState.FAILED and first.stop_reason == "hung"
    assert "hung: still running after 3 poll cycles (15 min)" in (first.reason or "")
    assert [event.message for event in events if type(event).__name__ == "PollCycle"] == [
        f"P01 attempt 1: poll cycle {n}/3, still running, log 0 bytes (+0)" for n in (1, 2, 3)]
    # ... and the remediation that follows starts its own count.
    [second] = executor.running("P01")
    assert second.spec.attempt_number == 2


def test_a_phase_whose_verification_keeps_failing_is_blocked_after_max_attempts(tmp_path: Path) -> None:
    engine, executor, clock, events = make_engine(tmp_path, [{"id": "P01", "verify": ["false"]}])
    settle(engine, clock)
    executor.end(executor.running("P01")[0])
    settle(engine, clock)
    executor.end(executor.running("P01")[0])
    assert settle(engine, clock) == ExitStatus.FAILED
    assert phase_state(engine, "P01") == PhaseState.BLOCKED
    assert [a.state for a in engine.store.attempts(engine.plan.id)] == [AttemptState.FAILED] * 2
    assert events[-1].message == "PLAN-U: 0/1 phases passed; not passed: P01 (blocked)"


def test_an_attempt_whose_supervisor_vanished_is_lost_then_remediated(tmp_path: Path) -> None:
    engine, executor, clock, _ = make_engine(tmp_path, [{"id": "P01"}])
    settle(engine, clock)
    [fake] = executor.running("P01")
    fake.alive = False  # gone without an exit record
    clock.advance(2)
    settle(engine, clock)
    [lost, remediation] = engine.store.attempts(engine.plan.id, "P01")
    assert lost.state == AttemptState.LOST and lost.reason == "lost: its supervisor is gone and left no exit record"
    assert remediation.state == AttemptState.RUNNING and remediation.remediation


def test_a_worker_that_cannot_start_fails_its_attempt_with_why(tmp_path: Path) -> None:
    engine, executor, clock, _ = make_engine(tmp_path, [{"id": "P01"}])
    engine.executor.fail_start = "could not start the worker: [Errno 2] no such file"  # type: ignore[attr-defined]
    assert settle(engine, clock, passes=5) == ExitStatus.FAILED
    attempts = engine.store.attempts(engine.plan.id, "P01")
    assert [a.reason for a in attempts] == ["could not start the worker: [Errno 2] no such file"] * 2
    assert phase_state(engine, "P01") == PhaseState.BLOCKED


@pytest.mark.parametrize("paused", [True, False])
def test_a_paused_run_starts_nothing_new_until_resumed(tmp_path: Path, paused: bool) -> None:
    engine, executor, clock, _ = make_engine(tmp_path, [{"id": "P01"}, {"id": "P02"}])
    if paused:
        engine._handle_message({"command": "pause"})
    settle(engine, clock)
    assert len(executor.attempts) == (0 if paused else 1)
    engine._handle_message({"command": "resume"})
    settle(engine, clock)
    assert len(executor.attempts) == 1
