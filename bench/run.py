"""Every benchmark of coord in one run, with its peers measured beside it, written to ``bench/RESULTS.md``.

    .venv/bin/python bench/run.py [--sizes 10,100,1000] [--runs 3] [--out bench/RESULTS.md]

What it measures (each figure's min / median / max over ``--runs``):

* **idle supervisors** -- ``bench/idle_supervisors.py`` with 40 workers: CPU share, RSS/PSS, exit -> ``exit.json``;
* **detection, launch bursts and restart** -- ``bench/detection.py`` with 200 live workers, push and poll paths,
  and the seed's ``ps -p`` loop beside them;
* **the CLI on large plans** -- ``bench/cli.py``: ``coord status`` / ``status --json`` cold on 500 phases, plan load
  and validation of 1,000 phases (p50/p95/p99/max);
* **per-phase overhead** of no-op phases at each size, as a chain and fully parallel (``--max-parallel`` = size):
  coord with the ``shell`` agent running ``true`` (every phase a real supervisor and worker process, judged and
  recorded), doit (Python-action tasks, ``doit -n 2`` for parallel) and Prefect 3 (a flow of tasks, ``.submit`` for
  parallel). The figure is the run's wall time over its number of phases, start-up included (as the peers'
  own benchmarks count it); the start-up alone (a 1-phase plan) is given beside it.

The peers are installed into ``bench/.peers`` (a virtualenv of their own, so they never change coord's) on the
first run; ``--no-peers`` skips them. The machine (CPUs, memory, kernel) and every version are written at the top.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
PEERS = REPO / "bench" / ".peers"
PEER_PACKAGES = ("doit>=0.36", "prefect>=3,<4")


def timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Seconds of wall time ``argv`` took; raises if it failed."""
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} … exited {result.returncode}: {result.stderr[-2000:]}")
    return time.perf_counter() - started


def coord_run(size: int, parallel: bool) -> float:
    with tempfile.TemporaryDirectory(prefix="coord-bench-") as folder:
        workspace = Path(folder)
        if os.environ.get("BENCH_KEEP"):
            workspace = Path(tempfile.mkdtemp(prefix="coord-bench-kept-"))
        plan_id = f"PLAN-BENCH-{uuid.uuid4().hex[:8]}"
        phases = [{"id": f"P{index:04d}", "kind": "impl", "title": f"no-op {index}", "script": ["true"],
                   **({"depends_on": []} if parallel else {})} for index in range(size)]
        document = {"plan": plan_id, "agent": "shell", "checks": {"report": False, "completed": False},
                    "phases": phases}
        (workspace / "plans").mkdir()
        (workspace / "plans" / f"{plan_id}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
        env = {**os.environ, "COORD_STATE_HOME": str(workspace / ".state")}  # a store of its own
        return timed([str(REPO / ".venv" / "bin" / "coord"), "run", f"plans/{plan_id}.yaml", "--headless",
                      "--max-parallel", str(size if parallel else 1)], workspace, env)


DODO = '''
SIZE, PARALLEL = {size}, {parallel}

def noop():
    return True

def task_phase():
    for index in range(SIZE):
        yield {{"name": f"P{{index:04d}}", "actions": [noop], "uptodate": [False],
                "task_dep": [] if PARALLEL or index == 0 else [f"phase:P{{index - 1:04d}}"]}}
'''

PREFECT_FLOW = '''
from prefect import flow, task

SIZE, PARALLEL = {size}, {parallel}

@task
def noop(index):
    return index

@flow
def plan():
    if PARALLEL:
        futures = [noop.submit(index) for index in range(SIZE)]
        return [future.result() for future in futures]
    return [noop(index) for index in range(SIZE)]

if __name__ == "__main__":
    plan()
'''


def doit_run(size: int, parallel: bool) -> float:
    with tempfile.TemporaryDirectory(prefix="doit-bench-") as folder:
        (Path(folder) / "dodo.py").write_text(DODO.format(size=size, parallel=parallel))
        argv = [str(PEERS / "bin" / "doit"), "--backend", "json", *(["-n", "2", "-P", "process"] if parallel else [])]
        return timed(argv, Path(folder))


def prefect_run(size: int, parallel: bool) -> float:
    with tempfile.TemporaryDirectory(prefix="prefect-bench-") as folder:
        (Path(folder) / "flow.py").write_text(PREFECT_FLOW.format(size=size, parallel=parallel))
        env = {**os.environ, "PREFECT_HOME": str(Path(folder) / ".prefect"), "PREFECT_LOGGING_LEVEL": "WARNING",
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
               # its ephemeral API server is slow to start on 2 busy cores; the start-up is part of its figure
               "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
        return timed([str(PEERS / "bin" / "python"), "flow.py"], Path(folder), env)


def ensure_peers() -> dict[str, str]:
    """Install the peers into bench/.peers when missing; their versions."""
    if not (PEERS / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
    if subprocess.run([str(PEERS / "bin" / "python"), "-c", "import doit, prefect"], capture_output=True).returncode:
        subprocess.run([str(PEERS / "bin" / "pip"), "install", "-q", *PEER_PACKAGES], check=True)
    script = ("import doit, prefect; v = doit.__version__; "
              "print('.'.join(map(str, v)) if isinstance(v, tuple) else v, prefect.__version__)")
    found = subprocess.run([str(PEERS / "bin" / "python"), "-c", script], capture_output=True, text=True,
                           check=True).stdout.split()
    return {"doit": found[0], "prefect": found[1]}


def spread(values: list[float]) -> str:
    return f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"


def per_phase(run: object, sizes: list[int], parallel: bool, runs: int) -> dict[int, list[float]]:
    """Milliseconds per phase at each size (wall time of the run over its phases), ``runs`` times; size 1 is the
    start-up alone."""
    return {size: [run(size, parallel) / size * 1000 for _ in range(runs)]  # type: ignore[operator]
            for size in [1, *sizes]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,1000", help="plan sizes, comma-separated (default 10,100,1000)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-peers", action="store_true", help="measure coord alone")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "RESULTS.md")
    parser.add_argument("--no-idle", action="store_true", help="skip the idle-supervisor measurement")
    parser.add_argument("--no-cli", action="store_true", help="skip the CLI measurements (bench/cli.py)")
    parser.add_argument("--no-detection", action="store_true",
                        help="skip the detection, burst and restart measurements (bench/detection.py)")
    parser.add_argument("--max-ms-per-phase", type=float, default=None,
                        help="exit 1 when coord's chain costs more than this per phase at the largest size (the "
                             "CI's regression guard)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    versions = {"coord": subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True,
                                        text=True).stdout.strip(), "python": platform.python_version()}
    runners: dict[str, object] = {"coord": coord_run}
    if not args.no_peers:
        versions.update(ensure_peers())
        runners.update({"doit": doit_run, "prefect": prefect_run})
    idle = None if args.no_idle else {started_by: json.loads(subprocess.run(
        [sys.executable, str(REPO / "bench" / "idle_supervisors.py"), "--workers", "40", "--seconds", "20", "--json",
         *flags], capture_output=True, text=True, check=True).stdout)
        for started_by, flags in (("fork server", []), ("Python process of its own", ["--direct"]))}
    detection = None if args.no_detection else json.loads(subprocess.run(
        [sys.executable, str(REPO / "bench" / "detection.py"), "--json"], capture_output=True, text=True,
        check=True).stdout)
    cli = None if args.no_cli else json.loads(subprocess.run(
        [sys.executable, str(REPO / "bench" / "cli.py"), "--json"], capture_output=True, text=True, check=True).stdout)
    overhead = {shape: {name: per_phase(run, sizes, shape == "parallel", args.runs) for name, run in runners.items()}
                for shape in ("chain", "parallel")}
    memory = psutil.virtual_memory().total / 2**30
    lines = [
        "# coord benchmarks", "",
        f"Written by `bench/run.py` on {time.strftime('%Y-%m-%d %H:%M %Z')}: {os.cpu_count()} CPUs, "
        f"{memory:.0f} GiB, {platform.system()} {platform.release()}; "
        + ", ".join(f"{name} {version}" for name, version in versions.items()) + ".", "",
    ]
    if idle is not None:
        lines += ["## Idle supervisors (40 workers that only sleep, over 20 s)", "",
                  "| started by | CPU per supervisor p50 / max (% of a core) | all 40 (%) | RSS p50 (MiB) | PSS p50 | "
                  "USS p50 | worker exit -> `exit.json` ms p50 / p95 / p99 / max |", "|---|---|---|---|---|---|---|"]
        for started_by, figures in idle.items():
            cpu, latency = figures["cpu_percent_per_supervisor"], figures["exit_to_record_ms"]
            lines.append(
                f"| {started_by} | {cpu['p50']:.3f} / {cpu['max']:.3f} | {figures['cpu_percent_all']:.2f} | "
                f"{figures['rss_mib']['p50']:.1f} | {figures['pss_mib']['p50']:.1f} | "
                f"{figures['uss_mib']['p50']:.1f} | "
                + " / ".join(f"{latency[key]:.1f}" for key in ("p50", "p95", "p99", "max")) + " |")
        lines += ["", "coord run uses the fork server; a supervisor is a Python process of its own only when no fork "
                  "server can be reached.", ""]
    if detection is not None:
        lines += [f"## Detection with {detection['workers']} live workers (ms: p50 / p95 / p99 / max)", "",
                  "Each worker blocks on a FIFO; they are released one by one, 0.1 s apart. From the release (the "
                  "worker exits within a millisecond of it):", "",
                  "| path | release -> `exit.json` | release -> verdict written | burst of launches (s) | "
                  "restart -> all reattached (s) |", "|---|---|---|---|---|"]
        for path, name in (("push", "push (control socket)"), ("poll", "file poll (`--no-socket`)")):
            run = detection[path]
            cells = [" / ".join(f"{run[key][q]:.1f}" for q in ("p50", "p95", "p99", "max"))
                     for key in ("release_to_exit_json_ms", "release_to_verdict_ms")]
            restart = (f"{run['restart_to_reattached_s']} ({run['reattached']} attempts)"
                       if "restart_to_reattached_s" in run else "–")
            lines.append(f"| {name} | {cells[0]} | {cells[1]} | {run['burst_s']} | {restart} |")
        seed = detection["seed_loop_1s_ms"]
        lines += ["", "The seed's practice: `while ps -p PID; do sleep 1; done` noticed an exit after "
                  + " / ".join(f"{seed[q]:.0f}" for q in ("p50", "p95", "p99", "max"))
                  + " ms; with `sleep 300`, as the seed runs it, 150,000 ms on average (computed).", ""]
    if cli is not None:
        lines += ["## The CLI on large plans (ms, 10 runs: p50 / p95 / p99 / max)", "",
                  "| what | p50 | p95 | p99 | max |", "|---|---|---|---|---|"]
        lines += [f"| {name} | " + " | ".join(f"{values[key]:.0f}" for key in ("p50", "p95", "p99", "max")) + " |"
                  for name, values in cli.items()]
        lines.append("")
    lines += [
        "## Per-phase overhead (ms per no-op phase, start-up included: min / median / max over "
        f"{args.runs} runs; 1 phase is the start-up alone)", "",
        textwrap.dedent("""\
            coord's phases are real processes (a supervisor and a `true` worker each, judged and recorded); doit's
            and Prefect's are Python functions in one process."""), "",
    ]
    for shape, by_runner in overhead.items():
        lines += [f"### {shape}", "", "| phases | " + " | ".join(by_runner) + " | coord / prefect |",
                  "|---|" + "---|" * (len(by_runner) + 1)]
        for size in [1, *sizes]:
            cells = [spread(by_runner[name][size]) for name in by_runner]
            prefect = statistics.median(by_runner["prefect"][size]) if "prefect" in by_runner else 0.0
            ratio = f"{statistics.median(by_runner['coord'][size]) / prefect:.1f}" if prefect else "–"
            lines.append(f"| {size} | " + " | ".join(cells) + f" | {ratio} |")
        lines.append("")
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")
    chain = statistics.median(overhead["chain"]["coord"][sizes[-1]])
    print(f"coord chain of {sizes[-1]}: {chain:.1f} ms per phase")
    if args.max_ms_per_phase is not None and chain > args.max_ms_per_phase:
        print(f"coord costs {chain:.1f} ms per phase > {args.max_ms_per_phase:g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
