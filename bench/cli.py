"""How fast coord answers a person on a large plan: ``coord status`` and ``status --json`` cold on a plan that ran,
and loading and checking a large plan (``coord validate``), as a new process each time and in-process.

    .venv/bin/python bench/cli.py [--status-phases 500] [--validate-phases 1000] [--runs 10] [--json]

Each figure is over ``--runs`` runs: p50 / p95 / p99 / max in milliseconds. "Cold" is a new ``coord`` process, its
interpreter start and imports included; "in-process" is the work alone (``load_checked_plan`` for validation).
The status plan is first run to the end (no-op ``shell`` phases, 50 at a time) so the store holds every phase's
attempt and verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
COORD = str(REPO / ".venv" / "bin" / "coord")


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p95, p99 and max of ``values`` (milliseconds), nearest-rank."""
    ordered = sorted(values)

    def rank(share: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]

    return {"p50": statistics.median(ordered), "p95": rank(0.95), "p99": rank(0.99), "max": ordered[-1]}


def write_plan(workspace: Path, size: int) -> str:
    phases = [{"id": f"P{index:04d}", "kind": "impl", "title": f"no-op {index}", "script": ["true"],
               "depends_on": []} for index in range(size)]
    document = {"plan": f"PLAN-CLI-{size}", "agent": "shell", "checks": {"report": False, "completed": False},
                "phases": phases}
    (workspace / "plans").mkdir(exist_ok=True)
    path = f"plans/PLAN-CLI-{size}.yaml"
    (workspace / path).write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def cold(argv: list[str], workspace: Path, env: dict[str, str], runs: int) -> list[float]:
    """Milliseconds of wall time of ``argv`` as a new process, ``runs`` times (it must exit 0)."""
    found = []
    for _ in range(runs):
        started = time.perf_counter()
        result = subprocess.run(argv, cwd=workspace, env=env, capture_output=True, text=True, timeout=600)
        found.append((time.perf_counter() - started) * 1000)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[1:])} exited {result.returncode}: {result.stderr[-1000:]}")
    return found


def in_process_validation(workspace: Path, plan: str, runs: int) -> list[float]:
    sys.path.insert(0, str(REPO))
    from coordinator.prompts.validate import load_checked_plan

    load_checked_plan(workspace / plan, workspace)  # imports and first-use caches out of the figure
    found = []
    for _ in range(runs):
        started = time.perf_counter()
        load_checked_plan(workspace / plan, workspace)
        found.append((time.perf_counter() - started) * 1000)
    return found


def measure(status_phases: int, validate_phases: int, runs: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="coord-bench-cli-") as folder:
        workspace = Path(folder)
        env = {**os.environ, "COORD_STATE_HOME": str(workspace / ".state")}
        status_plan = write_plan(workspace, status_phases)
        subprocess.run([COORD, "run", status_plan, "--headless", "--max-parallel", "50"], cwd=workspace, env=env,
                       capture_output=True, check=True, timeout=3600)
        validate_plan = write_plan(workspace, validate_phases)
        plan_id = f"PLAN-CLI-{status_phases}"
        return {
            f"coord status ({status_phases} phases), cold": percentiles(
                cold([COORD, "status", plan_id], workspace, env, runs)),
            f"coord status --json ({status_phases} phases), cold": percentiles(
                cold([COORD, "status", plan_id, "--json"], workspace, env, runs)),
            f"coord validate ({validate_phases} phases), cold": percentiles(
                cold([COORD, "validate", validate_plan], workspace, env, runs)),
            f"load and validate ({validate_phases} phases), in-process": percentiles(
                in_process_validation(workspace, validate_plan, runs)),
            "coord --version, cold (the interpreter and imports alone)": percentiles(
                cold([COORD, "--version"], workspace, env, runs)),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--status-phases", type=int, default=500)
    parser.add_argument("--validate-phases", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = measure(args.status_phases, args.validate_phases, args.runs)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for name, values in figures.items():
            print(f"{name}: " + ", ".join(f"{key} {value:.0f} ms" for key, value in values.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
