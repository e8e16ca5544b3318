"""Dashboard at scale: 500 phases, 200 running workers, a store changing underneath at the rate of a busy run.

Measures (printed as JSON):
- ``refresh``: the cost of one batched refresh from the store (p50/p95/max ms);
- ``keypress_to_frame``: from a ``down`` key event to the end of the first screen update after it — the moment a
  person sees the cursor move (p50/p95/max ms);
- ``keypress_to_detail``: from the key to the detail pane showing the new phase (it is debounced on purpose);
- the CPU share of the dashboard's thread and of the whole process (which includes a writer thread committing
  poll-cycle events at ``--events-per-second``, standing in for the coordinator) over ``--seconds``.
Running workers started at times spread over the last two hours, as in a long run.

Run: ``.venv/bin/python bench/tui_scale.py [--phases 500] [--running 200] [--seconds 10] [--events-per-second 40]``.
Not part of the test suite: timings depend on the machine (the targets are < 100 ms key-press to redraw, < 10 % of
a core). Frames are timed by wrapping ``Screen._compositor_refresh``, a Textual internal: the only point where a
frame is known to be drawn.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coordinator.paths import WorkspacePaths  # noqa: E402
from coordinator.state.events import PollCycle  # noqa: E402
from coordinator.state.store import Store  # noqa: E402
from coordinator.tui.app import make_app  # noqa: E402
from coordinator.tui.model import DashboardSource  # noqa: E402
from coordinator.util.timefmt import now_iso  # noqa: E402


def build_store(paths: WorkspacePaths, phases: int, running: int) -> None:
    """Seed a store with a run in progress, straight in SQL (a fixture: the states are made up, not reached)."""
    Store.open(paths).close()
    with sqlite3.connect(paths.db) as tx:
        tx.execute("INSERT INTO plans (plan_id, path, title, state, started_at, updated_at) VALUES (?,?,?,?,?,?)",
                   ("PLAN-BENCH", "plans/PLAN-BENCH.yaml", "bench", "running", now_iso(), now_iso()))
        for index in range(phases):
            phase_id = f"P{index:03d}"
            state = "running" if index < running else ("passed" if index < running + 100 else "pending")
            tx.execute("INSERT INTO phases (plan_id, phase_id, position, kind, title, state, attempts, updated_at) "
                       "VALUES (?,?,?,?,?,?,?,?)",
                       ("PLAN-BENCH", phase_id, index, "impl", f"phase number {index}", state,
                        1 if state != "pending" else 0, now_iso()))
            started = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(time.time() - random.uniform(0, 7200)))
            if state != "pending":
                attempt_dir = paths.attempt_dir("PLAN-BENCH", phase_id, 1)
                attempt_dir.mkdir(parents=True)
                (attempt_dir / "worker.log").write_text("$ make test\nok\n" * 50)
                tx.execute("INSERT INTO attempts (attempt_id, plan_id, phase_id, number, remediation, state, agent, "
                           "attempt_dir, worker_pid, started_at, ended_at, cycle, input_tokens, output_tokens) "
                           "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           (f"a{index}", "PLAN-BENCH", phase_id, 1, 0, state, "codex", str(attempt_dir), os.getpid(),
                            started, None if state == "running" else now_iso(), 0, 1000, 50))


def churn(paths: WorkspacePaths, running: int, rate: float, stop: threading.Event) -> None:
    """Commit a poll-cycle change and an event ``rate`` times a second, like a coordinator with many workers."""
    store = Store.open(paths)
    cycles: dict[int, int] = {}
    interval = 1.0 / rate if rate > 0 else 1.0
    while not stop.is_set():
        index = random.randrange(running)
        cycles[index] = cycles.get(index, 0) + 1
        store.record_cycle(f"a{index}", cycles[index], [PollCycle(
            plan_id="PLAN-BENCH", phase_id=f"P{index:03d}", attempt=1, cycle=cycles[index], max_cycles=6,
            log_bytes=0, silent_cycles=0, message=f"P{index:03d} attempt 1: poll cycle, still running")])
        stop.wait(interval)
    store.close()


def percentiles(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "p50_ms": round(statistics.median(values) * 1000, 1),
        "p95_ms": round(values[int(len(values) * 0.95) - 1] * 1000, 1),
        "max_ms": round(values[-1] * 1000, 1),
        "n": len(values),
    }


async def measure(args: argparse.Namespace) -> dict[str, object]:
    from textual import events
    from textual.screen import Screen

    root = Path(tempfile.mkdtemp(prefix="coord-bench-"))
    paths = WorkspacePaths(root)
    build_store(paths, args.phases, args.running)
    app = make_app(DashboardSource(paths, "PLAN-BENCH", None))
    refresh_times: list[float] = []
    original = app.refresh_from_store

    def timed_refresh(force: bool = False) -> None:
        started = time.perf_counter()
        original(force=force)
        refresh_times.append(time.perf_counter() - started)

    frames_drawn: list[float] = []
    draw = Screen._compositor_refresh

    def timed_draw(screen: Screen) -> None:
        draw(screen)
        frames_drawn.append(time.perf_counter())

    Screen._compositor_refresh = timed_draw  # type: ignore[method-assign]
    app.refresh_from_store = timed_refresh  # type: ignore[method-assign]
    stop = threading.Event()
    writer = threading.Thread(target=churn, args=(paths, args.running, args.events_per_second, stop), daemon=True)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause(0.5)
        if args.events_per_second > 0:
            writer.start()
        to_frame, to_detail = [], []
        for _ in range(30):
            before = app.selected
            frames_drawn.clear()
            started = time.perf_counter()
            app.post_message(events.Key("down", None))
            while not frames_drawn or app.selected == before:
                await asyncio.sleep(0.001)
            to_frame.append(frames_drawn[0] - started)
            while app.detail_key is None or app.detail_key[0] != app.selected:
                await asyncio.sleep(0.001)
            to_detail.append(time.perf_counter() - started)
            await asyncio.sleep(0.15)
        cpu_start = resource.getrusage(resource.RUSAGE_SELF)
        thread_start = time.thread_time()
        wall_start = time.perf_counter()
        await pilot.pause(args.seconds)
        cpu_end = resource.getrusage(resource.RUSAGE_SELF)
        thread_cpu = time.thread_time() - thread_start
        wall = time.perf_counter() - wall_start
        stop.set()
    Screen._compositor_refresh = draw  # type: ignore[method-assign]
    cpu = (cpu_end.ru_utime - cpu_start.ru_utime) + (cpu_end.ru_stime - cpu_start.ru_stime)
    return {
        "phases": args.phases,
        "running": args.running,
        "events_per_second": args.events_per_second,
        "refresh": percentiles(refresh_times),
        "keypress_to_frame": percentiles(to_frame),
        "keypress_to_detail": percentiles(to_detail),
        "cpu_percent_dashboard_thread": round(100 * thread_cpu / wall, 1),
        "cpu_percent_process": round(100 * cpu / wall, 1),
        "note": "the process figure includes the writer thread that simulates the coordinator's commits",
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", type=int, default=500)
    parser.add_argument("--running", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--events-per-second", type=float, default=40.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args)), indent=2))


if __name__ == "__main__":
    main()
