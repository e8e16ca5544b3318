"""How fast coord notices an ended worker with many live ones, how long a burst of launches takes, and how long a
restarted coordinator takes to take them all back.

    .venv/bin/python bench/detection.py [--workers 200] [--releases 50] [--gap 0.1] [--json]

One run of ``coord run`` (push path), one with ``--no-socket`` (file poll), each on a plan of ``--workers``
parallel ``shell`` phases at ``--max-parallel`` = workers. Each worker blocks on a FIFO of its own (no CPU), so
all of them are live at once; the script then releases ``--releases`` of them one by one, ``--gap`` seconds apart,
and times, from the release (the worker then exits within a millisecond):

* release -> ``exit.json`` written by the attempt's supervisor;
* release -> the verdict written (``evidence.json``): detection, judging and the commit, an upper bound of
  "exit -> verdict start".

Also: the burst (``coord run`` started -> every worker's ``identity.json``), and on the push run a restart
(coordinator SIGKILLed with the remaining workers live, ``coord run`` again -> its first answer on the control
socket, which comes only once every attempt was reattached). Beside them, the seed practice: a
``sleep 300; ps -p PID`` loop waits 150 s on average (computed), and the same loop at 1 s is measured here.
Every figure is p50 / p95 / p99 / max in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from coordinator.paths import WorkspacePaths  # noqa: E402 - the checkout's coord
from coordinator.process.control_socket import send_command  # noqa: E402

COORD = REPO / ".venv" / "bin" / "coord"
PLAN_ID = "PLAN-DETECT"


def spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]

    return {"p50": statistics.median(ordered), "p95": at(0.95), "p99": at(0.99), "max": ordered[-1], "n": len(ordered)}


def wait_for(predicate: Any, timeout: float, every: float = 0.001) -> float:
    """Monotonic time at which ``predicate()`` first held; raises after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout} s: {predicate}")
        time.sleep(every)


def release(fifo: Path) -> None:
    """Let the worker blocked on ``fifo`` go: open it for writing (the reader is waiting) and close it: EOF."""
    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def one_run(workers: int, releases: int, gap: float, push: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="coord-detect-") as folder:
        workspace = Path(folder)
        (workspace / "fifo").mkdir()
        phases = []
        for index in range(workers):
            phase_id = f"P{index:03d}"
            os.mkfifo(workspace / "fifo" / phase_id)
            phases.append({"id": phase_id, "kind": "impl", "title": f"waits {index}", "depends_on": [],
                           "script": [f"cat fifo/{phase_id}"]})
        plan = {"plan": PLAN_ID, "agent": "shell", "checks": {"report": False, "completed": False},
                "phases": phases}
        (workspace / "plans").mkdir()
        (workspace / "plans" / f"{PLAN_ID}.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
        os.environ["COORD_STATE_HOME"] = str(workspace / ".state")  # a store of its own, found by both sides
        env = dict(os.environ)
        paths = WorkspacePaths(workspace)
        argv = [str(COORD), "run", f"plans/{PLAN_ID}.yaml", "--headless", "--max-parallel", str(workers),
                *([] if push else ["--no-socket"])]
        records = [paths.records_dir(PLAN_ID, phase["id"], 1) for phase in phases]
        evidence = [paths.attempt_dir(PLAN_ID, phase["id"], 1) / "evidence.json" for phase in phases]
        started = time.monotonic()
        coordinator = subprocess.Popen(argv, cwd=workspace, env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        try:
            burst = wait_for(lambda: all((folder / "identity.json").exists() for folder in records), 600, 0.01)
            to_exit, to_verdict = [], []
            for index in range(releases):
                released = time.monotonic()
                release(workspace / "fifo" / phases[index]["id"])
                to_exit.append(wait_for((records[index] / "exit.json").exists, 60) - released)
                to_verdict.append(wait_for(evidence[index].exists, 60) - released)
                time.sleep(gap)
            figures: dict[str, Any] = {
                "burst_s": round(burst - started, 2),
                "release_to_exit_json_ms": spread([value * 1000 for value in to_exit]),
                "release_to_verdict_ms": spread([value * 1000 for value in to_verdict]),
            }
            if push:
                coordinator.send_signal(signal.SIGKILL)
                coordinator.wait(timeout=30)
                restarted = time.monotonic()
                coordinator = subprocess.Popen(argv, cwd=workspace, env=env, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL)
                wait_for(lambda: _answers(paths.socket_path()), 120, 0.002)
                figures["restart_to_reattached_s"] = round(time.monotonic() - restarted, 3)
                figures["reattached"] = workers - releases
            for index in range(releases, workers):
                release(workspace / "fifo" / phases[index]["id"])
            coordinator.wait(timeout=600)
        finally:
            if coordinator.poll() is None:
                coordinator.kill()
                coordinator.wait()
    return figures


def _answers(socket_path: Path) -> bool:
    try:
        return bool(send_command(socket_path, {"command": "ping"}, timeout=0.5).get("ok"))
    except OSError:
        return False


def seed_loop(samples: int) -> dict[str, float]:
    """The seed's practice, at a 1 s interval: ``while ps -p PID; do sleep 1; done`` — ms from the exit to the
    loop noticing it."""
    delays = []
    for index in range(samples):
        worker = subprocess.Popen(["sleep", f"{1.3 + index * 0.37 % 1:.2f}"])
        watcher = subprocess.Popen(["sh", "-c", f"while ps -p {worker.pid} >/dev/null; do sleep 1; done"])
        worker.wait()
        ended = time.monotonic()
        watcher.wait()
        delays.append((time.monotonic() - ended) * 1000)
    return spread(delays)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=200)
    parser.add_argument("--releases", type=int, default=50)
    parser.add_argument("--gap", type=float, default=0.1, help="seconds between two releases")
    parser.add_argument("--seed-samples", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    figures = {
        "workers": args.workers,
        "push": one_run(args.workers, args.releases, args.gap, push=True),
        "poll": one_run(args.workers, args.releases, args.gap, push=False),
        "seed_loop_1s_ms": seed_loop(args.seed_samples),
        "seed_loop_300s_mean_ms": 150_000.0,
    }
    if args.json:
        print(json.dumps(figures))
        return 0
    for path in ("push", "poll"):
        run = figures[path]
        print(f"{path} path, {args.workers} live workers: burst of launches {run['burst_s']} s")
        for key in ("release_to_exit_json_ms", "release_to_verdict_ms"):
            value = run[key]
            print(f"  {key}: p50 {value['p50']:.1f}, p95 {value['p95']:.1f}, p99 {value['p99']:.1f}, "
                  f"max {value['max']:.1f}")
        if "restart_to_reattached_s" in run:
            print(f"  restart -> {run['reattached']} attempts reattached: {run['restart_to_reattached_s']} s")
    seed = figures["seed_loop_1s_ms"]
    print(f"seed loop at 1 s: p50 {seed['p50']:.0f} ms, max {seed['max']:.0f} ms; at 300 s: 150000 ms on average")
    return 0


if __name__ == "__main__":
    sys.exit(main())
