"""Notifications: a person who walked away learns that a phase is blocked or the run finished, through apprise
URLs, here a ``json://`` webhook on a local HTTP endpoint (127.0.0.1)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import coord, write_plan

pytestmark = pytest.mark.slow


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local endpoint that records every JSON body POSTed to it; yields (its host:port, the bodies)."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            received.append(json.loads(self.rfile.read(length) or b"{}"))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def test_a_blocked_phase_and_the_finished_run_are_notified(workspace: Path, webhook: Any) -> None:
    address, received = webhook
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "fails", "instructions": "[[fake:no_report]]"},
        {"id": "P02", "kind": "impl", "title": "passes", "instructions": "[[fake:pass]]", "depends_on": []},
    ], policy={"max_attempts": 1}, notify={"urls": [f"json://{address}/hook"]})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1, result.stdout + result.stderr
    titles = [body["title"] for body in received]
    assert titles == ["coord: PLAN-T P01 blocked", "coord: PLAN-T finished, 1/2 passed"], received
    assert "P01 blocked after 1 attempt(s)" in received[0]["message"]
    assert "not sent" not in result.stdout


def test_the_user_config_file_sends_for_plans_that_name_no_url(workspace: Path, webhook: Any,
                                                              tmp_path: Path) -> None:
    address, received = webhook
    config = tmp_path / "config.yaml"
    config.write_text(f"notify:\n  urls: ['json://{address}/hook']\n  on: [finished]\n")
    plan = write_plan(workspace, [{"id": "P01", "kind": "stub", "title": "x", "instructions": "[[fake:pass]]"}])

    result = coord(workspace, "run", str(plan), env={"COORD_CONFIG": str(config)})

    assert result.returncode == 0, result.stdout + result.stderr
    assert [body["title"] for body in received] == ["coord: PLAN-T finished, all passed"]


def test_an_unreachable_endpoint_is_one_warning_and_the_run_goes_on(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "fails", "instructions": "[[fake:no_report]]"},
        {"id": "P02", "kind": "impl", "title": "slow", "instructions": "[[fake:slow]]", "depends_on": []},
    ], policy={"max_attempts": 1}, notify={"urls": ["json://127.0.0.1:9/hook"]})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.count("not sent") == 1, result.stdout
    assert "notification 'coord: PLAN-T P01 blocked' not sent" in result.stdout


def test_a_notify_url_that_is_not_a_url_is_a_plan_problem(workspace: Path) -> None:
    plan = write_plan(workspace, [{"id": "P01", "kind": "stub", "title": "x", "instructions": "[[fake:pass]]"}],
                      notify={"urls": ["hooks.example"]})

    result = coord(workspace, "validate", str(plan))

    assert result.returncode == 2 and "notify.urls[0]" in result.stderr, result.stderr
