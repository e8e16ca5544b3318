"""What waiting costs: N supervisors whose workers only sleep, their CPU share and memory, and how fast each
records its worker's exit.

    python bench/idle_supervisors.py [--workers 20] [--seconds 10] [--direct] [--json]

Each supervisor is started as ``coord run`` starts it: forked by the workspace's fork server
(``coordinator/process/fork_server.py``), with the default log cap, over a worker ``sleep`` that outlives the
measurement; ``--direct`` starts each as a Python process of its own instead (``python -I -S supervisor.py``, what
coord does when no fork server can be reached). The figures:

* CPU: the supervisors' user + system time over ``--seconds`` of waiting, as a share of one core, per supervisor
  and in all (``psutil`` ``cpu_times``);
* memory: RSS, PSS and USS of each supervisor (``psutil`` ``memory_full_info``), in MiB: RSS counts every page it
  shares with the fork server and every other Python process in full, PSS a share of each, USS its own alone;
* exit → ``exit.json``: the workers are then killed one by one; the time from the SIGKILL to ``exit.json``
  appearing (polled every 1 ms by this script) is the supervisor's recording latency.

Nothing here is a pass/fail test; ``bench/RESULTS.md`` records the figures, and ``--max-cpu-percent`` makes the
run exit 1 when one idle supervisor uses more than that share of a core (the CI's regression guard).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coordinator.process.fork_client import ForkServer  # noqa: E402 - the checkout's coord, whatever is installed
from coordinator.process.local import LocalExecutor  # noqa: E402
from coordinator.process.records import Identity, SupervisorSpec  # noqa: E402


def start(executor: LocalExecutor, base: Path, index: int, seconds: float) -> tuple[SupervisorSpec, Identity]:
    attempt = base / f"a{index}"
    records = base / f"r{index}"
    attempt.mkdir()
    spec = SupervisorSpec(
        attempt_id=str(uuid.uuid4()), phase_id=f"P{index:03d}", attempt_number=1,
        argv=("sleep", str(int(seconds * 4 + 30))), cwd=str(base), env={}, stdin_path=None,
        log_path=str(attempt / "worker.log"), attempt_dir=str(attempt), records_dir=str(records),
        signal_path=None, socket_path=None, kill_grace=1.0, log_cap_bytes=64 * 1024 * 1024)
    return spec, executor.start(spec)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--direct", action="store_true",
                        help="start each supervisor as a Python process of its own, not by the fork server")
    parser.add_argument("--max-cpu-percent", type=float, default=None,
                        help="exit 1 when one idle supervisor uses more than this share of a core")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="coord-bench-") as folder:
        base = Path(folder)
        fork_server = None if args.direct else ForkServer(
            Path(f"/tmp/coord-bench-{uuid.uuid4().hex[:8]}.sock"), base / "fork-server.log")
        executor = LocalExecutor(fork_server=fork_server)
        started = [start(executor, base, index, args.seconds) for index in range(args.workers)]
        time.sleep(1.0)  # past start-up: only the waiting is measured
        handles = [psutil.Process(identity.supervisor_pid) for _, identity in started]
        before = [sum(handle.cpu_times()[:2]) for handle in handles]
        time.sleep(args.seconds)
        cpu = [(sum(handle.cpu_times()[:2]) - first) / args.seconds * 100
               for handle, first in zip(handles, before, strict=True)]
        memory = [handle.memory_full_info() for handle in handles]
        latencies = []
        for spec, identity in started:
            exit_file = Path(spec.records_dir) / "exit.json"
            killed = time.monotonic()
            os.kill(identity.worker_pid, signal.SIGKILL)
            while not exit_file.exists():
                time.sleep(0.001)
            latencies.append((time.monotonic() - killed) * 1000)
        for handle in handles:
            psutil.wait_procs([handle], timeout=30)
            executor.poll_ended()
        executor.close()
    figures = {
        "workers": args.workers,
        "started_by": "python process" if args.direct else "fork server",
        "seconds": args.seconds,
        "cpu_percent_per_supervisor": {"p50": statistics.median(cpu), "max": max(cpu)},
        "cpu_percent_all": sum(cpu),
        "rss_mib": {"p50": statistics.median(m.rss for m in memory) / 2**20, "max": max(m.rss for m in memory) / 2**20},
        "pss_mib": {"p50": statistics.median(m.pss for m in memory) / 2**20},
        "uss_mib": {"p50": statistics.median(m.uss for m in memory) / 2**20},
        "exit_to_record_ms": {"p50": statistics.median(latencies), "p95": percentile(latencies, 0.95),
                              "p99": percentile(latencies, 0.99), "max": max(latencies)},
    }
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"{args.workers} idle supervisors over {args.seconds:g} s:")
        per = figures["cpu_percent_per_supervisor"]
        print(f"  CPU per supervisor: p50 {per['p50']:.3f} %, max {per['max']:.3f} % of a core; "
              f"all: {figures['cpu_percent_all']:.2f} %")
        print(f"  RSS p50 {figures['rss_mib']['p50']:.1f} MiB (max {figures['rss_mib']['max']:.1f}), "
              f"PSS p50 {figures['pss_mib']['p50']:.1f} MiB, USS p50 {figures['uss_mib']['p50']:.1f} MiB")
        lat = figures["exit_to_record_ms"]
        print(f"  worker exit -> exit.json: p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f}, p99 {lat['p99']:.1f}, "
              f"max {lat['max']:.1f}")
    if args.max_cpu_percent is not None and figures["cpu_percent_per_supervisor"]["max"] > args.max_cpu_percent:
        print(f"idle supervisor CPU {figures['cpu_percent_per_supervisor']['max']:.3f} % > {args.max_cpu_percent} %",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
