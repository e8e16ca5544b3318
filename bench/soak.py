"""Crash soak: a wide plan of misbehaving fake workers, the coordinator SIGKILLed and restarted, one supervisor
killed, and at the end the bookkeeping checked against what really happened.

    .venv/bin/python bench/soak.py [--phases 200] [--parallel 20] [--kills 3] [--seed 1] [--json]

Each phase's fake codex worker is drawn at random from: pass, fail then pass, lie then pass, hang then pass,
crash then pass, fork-escape then pass, tamper with coord's files then pass, symlink its report then pass. Exit 0
when every check holds; the checks, and what the run took, are printed (one JSON object with ``--json``):

- every attempt is accounted for: each phase passed or blocked, its attempts numbered 1..N, none unfinished;
- one ``worker-pids.txt`` line per attempt whose worker started;
- never two live workers of one phase (the process table sampled every 0.1 s);
- no process of the plan left running;
- ``events.jsonl`` holds exactly the store's events (after the final restart has caught it up).

The 30-phase version runs in the test suite (``tests/e2e/test_soak.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

REPO = Path(__file__).resolve().parent.parent
FAKE_CODEX = REPO / "tests" / "fakes" / "codex"
SCENARIOS = ["pass", "fail,pass", "lie,pass", "hang,pass", "crash,pass", "fork_escape,pass", "tamper,pass",
             "symlink_report,pass"]


def write_plan(workspace: Path, phases: int, rng: random.Random) -> tuple[Path, dict[str, str]]:
    drawn = {f"P{index:03d}": rng.choice(SCENARIOS) for index in range(phases)}
    plan = {
        "plan": "PLAN-SOAK", "title": "soak", "agent": "fake",
        "agents": {"fake": {"base": "codex", "binary": str(FAKE_CODEX),
                            "env": {"FAKE_CODEX_SYMLINK_TARGET": "/etc/hostname"}}},
        "policy": {"poll_interval": "0.3s", "max_cycles": 8, "max_attempts": 3, "kill_grace": "0.5s"},
        "artifacts": {"report": "reports/{{ phase.id }}.md", "completed": ".completed/{{ phase.id }}.md"},
        "phases": [{"id": phase_id, "kind": "impl", "title": scenario, "depends_on": [],
                    "instructions": f"[[fake:{scenario}]]"} for phase_id, scenario in drawn.items()],
    }
    path = workspace / "plans" / "PLAN-SOAK.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(plan, sort_keys=False), encoding="utf-8")
    return path, drawn


def plan_processes(cookie: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["environ", "status"]):
        try:
            environ = process.info["environ"] or {}
            if environ.get("COORD_SOAK") == cookie and process.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


class Sampler(threading.Thread):
    """Samples the process table: for each phase, the distinct attempts whose workers are alive at once."""

    def __init__(self, cookie: str) -> None:
        super().__init__(daemon=True)
        self.cookie = cookie
        self.stop = threading.Event()
        self.samples = 0
        self.overlaps: list[tuple[str, list[str]]] = []

    def run(self) -> None:
        while not self.stop.wait(0.1):
            by_phase: dict[str, set[str]] = {}
            for process in plan_processes(self.cookie):
                try:
                    environ = process.environ()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                if environ.get("COORD_PHASE_ID") and environ.get("COORD_ATTEMPT_ID"):
                    by_phase.setdefault(environ["COORD_PHASE_ID"], set()).add(environ["COORD_ATTEMPT_ID"])
            self.samples += 1
            self.overlaps += [(phase, sorted(ids)) for phase, ids in by_phase.items() if len(ids) > 1]


def coord(workspace: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "coordinator", *args], cwd=workspace, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            start_new_session=True)


def store_rows(db: Path, sql: str) -> list[sqlite3.Row]:
    """Rows of the store, read as `coord status` does; [] while the store does not exist yet."""
    try:
        connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.DatabaseError:
        return []
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute(sql).fetchall()
    except sqlite3.DatabaseError:
        return []
    finally:
        connection.close()


def soak(workspace: Path, phases: int, parallel: int, kills: int, seed: int, deadline_s: float) -> dict[str, Any]:
    from coordinator.paths import WorkspacePaths

    rng = random.Random(seed)
    plan, drawn = write_plan(workspace, phases, rng)
    cookie = os.urandom(8).hex()
    env = {**os.environ, "COORD_SOAK": cookie, "CODEX_HOME": str(workspace / ".codex-home"),
           "OPENAI_API_KEY": os.environ.get("OPENAI_API_KEY", "not-a-key-the-fake-codex-ignores-it")}
    paths = WorkspacePaths(workspace)
    args = ("run", str(plan.relative_to(workspace)), "--headless", "--max-parallel", str(parallel))
    sampler = Sampler(cookie)
    sampler.start()
    started = time.monotonic()
    restarts = supervisor_kills = 0
    process = coord(workspace, env, *args)
    kill_after = sorted(rng.uniform(0.15, 0.75) for _ in range(kills))
    supervisor_after = rng.uniform(0.2, 0.6)
    while True:
        if time.monotonic() - started > deadline_s:
            process.kill()
            raise RuntimeError(f"the soak did not finish within {deadline_s:g} s")
        done = len(store_rows(paths.db, "SELECT 1 FROM phases WHERE state IN ('passed', 'blocked')"))
        if kill_after and done >= kill_after[0] * phases:
            kill_after.pop(0)
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            restarts += 1
            process = coord(workspace, env, *args)
        if supervisor_kills == 0 and done >= supervisor_after * phases:
            running = store_rows(paths.db, "SELECT plan_id, phase_id, number FROM attempts WHERE state='running'")
            for row in running[:1]:
                identity = paths.records_dir(row["plan_id"], row["phase_id"], row["number"]) / "identity.json"
                try:
                    os.kill(json.loads(identity.read_text())["supervisor_pid"], signal.SIGKILL)
                    supervisor_kills += 1
                except (OSError, ValueError, KeyError):
                    pass
        if process.poll() is not None:
            if process.returncode in (0, 1):
                break
            restarts += 1  # killed by something else: restart as a person would
            process = coord(workspace, env, *args)
        time.sleep(0.05)
    # A last restart, as the next `coord run` would: it catches the mirrors up and finds nothing to do.
    final = coord(workspace, env, *args)
    final.wait(timeout=120)
    elapsed = time.monotonic() - started
    sampler.stop.set()
    sampler.join()
    time.sleep(0.5)
    return check(paths, drawn, sampler, elapsed, restarts, supervisor_kills, cookie)


def check(paths: Any, drawn: dict[str, str], sampler: Sampler, elapsed: float, restarts: int,
          supervisor_kills: int, cookie: str) -> dict[str, Any]:
    phases = {row["phase_id"]: row["state"] for row in store_rows(paths.db, "SELECT phase_id, state FROM phases")}
    attempts = store_rows(paths.db,
                          "SELECT phase_id, number, state, worker_pid FROM attempts ORDER BY phase_id, number")
    by_phase: dict[str, list[int]] = {}
    for row in attempts:
        by_phase.setdefault(row["phase_id"], []).append(row["number"])
    unfinished = [f"{row['phase_id']}/{row['number']}" for row in attempts
                  if row["state"] not in ("passed", "failed", "lost")]
    gaps = [phase for phase, numbers in by_phase.items() if numbers != list(range(1, len(numbers) + 1))]
    audit = (paths.pid_audit_file("PLAN-SOAK").read_text().splitlines()
             if paths.pid_audit_file("PLAN-SOAK").exists() else [])
    audit_keys = [(line.split()[0], line.split()[4]) for line in audit]
    started = {(row["phase_id"], str(row["number"])) for row in attempts if row["worker_pid"] is not None}
    store_events = [row["seq"] for row in store_rows(paths.db, "SELECT seq FROM events ORDER BY seq")]
    mirror = paths.events_file("PLAN-SOAK")
    mirror_events = [json.loads(line).get("seq") for line in mirror.read_text().splitlines() if line.strip()] \
        if mirror.exists() else []
    left = [process.pid for process in plan_processes(cookie)]
    checks = {
        "every phase passed or blocked": sorted(phases) == sorted(drawn) and all(
            state in ("passed", "blocked") for state in phases.values()),
        "every attempt finished and numbered without gaps": not unfinished and not gaps,
        "one audit line per started worker": sorted(audit_keys) == sorted(started),
        "never two live workers of one phase": not sampler.overlaps,
        "no process left": not left,
        "events.jsonl equals the store": mirror_events == store_events,
    }
    return {
        "phases": len(drawn), "attempts": len(attempts), "restarts": restarts,
        "supervisors_killed": supervisor_kills, "samples": sampler.samples, "elapsed_s": round(elapsed, 1),
        "passed": sum(1 for state in phases.values() if state == "passed"),
        "blocked": sum(1 for state in phases.values() if state == "blocked"),
        "checks": checks, "ok": all(checks.values()),
        "problems": {"unfinished": unfinished, "gaps": gaps, "overlaps": sampler.overlaps[:5], "left": left,
                     "audit_missing": sorted(started - set(audit_keys))[:5],
                     "audit_extra": sorted(set(audit_keys) - started)[:5],
                     "events_missing": sorted(set(store_events) - set(mirror_events))[:5]},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=20)
    parser.add_argument("--kills", type=int, default=3, help="times the coordinator is SIGKILLed and restarted")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--deadline", type=float, default=1800.0, help="give up after this many seconds")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="coord-soak-") as folder:
        workspace = Path(folder) / "ws"
        workspace.mkdir()
        os.environ.setdefault("COORD_STATE_HOME", str(Path(folder) / "state"))
        report = soak(workspace, args.phases, args.parallel, args.kills, args.seed, args.deadline)
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        for name, ok in report["checks"].items():
            print(f"{'ok  ' if ok else 'FAIL'} {name}")
        print({key: value for key, value in report.items() if key not in ("checks", "problems")})
        if not report["ok"]:
            print(report["problems"])
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
