"""A lost attempt's leftovers are killed off the loop: while one is being killed (a grace period each), the engine
goes on reattaching, watching and judging the others."""

from __future__ import annotations

import threading
from pathlib import Path

from coordinator.states import AttemptState
from tests.unit.engine.test_engine_loop import FakeExecutor, make_engine, settle


class SlowKills(FakeExecutor):
    """Killing leftovers blocks until the test lets it go, as a worker that ignores SIGTERM would."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.killing = threading.Event()

    def kill_processes(self, attempt_id: str, grace: float) -> list[int]:
        self.killing.set()
        self.release.wait(10)
        return [4242]


def test_killing_a_lost_attempts_leftovers_never_holds_up_the_loop(tmp_path: Path) -> None:
    engine, executor, clock, _ = make_engine(tmp_path, [{"id": "P01", "depends_on": []},
                                                          {"id": "P02", "depends_on": []}], max_parallel=2)
    slow = SlowKills()
    slow.attempts = executor.attempts
    engine.executor = slow
    settle(engine, clock)
    first, second = (slow.running(phase)[0] for phase in ("P01", "P02"))
    first.alive = False  # P01's supervisor vanished: lost, with a leftover to kill

    clock.advance(engine.options.poll_fallback)
    engine.step()
    assert slow.killing.wait(5)
    slow.end(second)  # meanwhile P02's worker ends: it is judged although P01's kill still runs
    for _ in range(200):
        clock.advance(engine.options.poll_fallback)
        engine.step()
        if engine.store.attempt(second.spec.attempt_id).state == AttemptState.PASSED:  # type: ignore[union-attr]
            break
        threading.Event().wait(0.01)

    attempts = {a.phase_id: a for a in engine.store.attempts(engine.plan.id) if a.number == 1}
    assert attempts["P02"].state == AttemptState.PASSED
    assert attempts["P01"].state == AttemptState.RUNNING, "its verdict waits for the kill"
    slow.release.set()
    settle(engine, clock, passes=2)
    lost = next(a for a in engine.store.attempts(engine.plan.id, "P01") if a.number == 1)
    assert lost.state == AttemptState.LOST and "(killed leftover processes [4242])" in (lost.reason or "")
