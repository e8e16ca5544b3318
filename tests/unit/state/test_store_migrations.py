"""The state store: a database made by an earlier coord gains the columns added since, keeping its rows."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from coordinator.paths import WorkspacePaths
from coordinator.state.store import SCHEMA, Store


def schema_before_summaries() -> str:
    """The schema as coord wrote it before attempts kept their last message and command counts."""
    old_schema = SCHEMA.replace(
        "    last_message TEXT,                 -- the agent's final message (capped at 4000 characters)\n"
        "    commands INTEGER NOT NULL DEFAULT 0,\n"
        "    file_changes INTEGER NOT NULL DEFAULT 0,\n", "")
    assert old_schema != SCHEMA
    return old_schema


def test_older_store_gains_new_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    paths = WorkspacePaths(tmp_path)
    paths.ensure_state_dir()
    old_schema = schema_before_summaries()
    with sqlite3.connect(paths.db) as connection:
        connection.executescript(old_schema)
        connection.execute(
            "INSERT INTO attempts (attempt_id, plan_id, phase_id, number, remediation, state, agent, attempt_dir) "
            "VALUES ('a1', 'P', 'P01', 1, 0, 'passed', 'codex', '/x')")

    store = Store.open(paths)
    try:
        row = store.attempt("a1")
        assert row is not None and row.state == "passed" and row.commands == 0 and row.last_message is None
    finally:
        store.close()


def test_a_reader_never_sees_a_half_created_store(tmp_path: Path) -> None:
    """A dashboard or `coord status` opening the store while a starting coordinator creates it sees either no run
    yet or the whole schema — never a database with some tables missing (a CI failure once: "no such table")."""
    import threading

    failures: list[BaseException] = []
    for round_number in range(60):
        paths = WorkspacePaths(tmp_path / f"ws{round_number}")
        paths.tmp.mkdir(parents=True)
        created = threading.Event()

        def create(paths: WorkspacePaths = paths, created: threading.Event = created) -> None:
            Store.open(paths).close()
            created.set()

        writer = threading.Thread(target=create)
        writer.start()
        while not created.is_set() or writer.is_alive():
            try:
                reader = Store.open_readonly(paths)
            except Exception as exc:  # noqa: BLE001 - any error here is the defect under test
                failures.append(exc)
                break
            if reader is None:
                continue
            try:
                reader.attempts("P")
                reader.phases("P")
                reader.events("P")
            except Exception as exc:  # noqa: BLE001
                failures.append(exc)
            finally:
                reader.close()
            break
        writer.join()
    assert failures == []


def test_status_reads_a_store_made_by_an_older_coord(tmp_path: Path) -> None:
    """`coord status` right after an upgrade, before any `coord run`: the new columns are added, not a crash."""
    from tests.helpers import coord

    paths = WorkspacePaths(tmp_path)
    paths.ensure_state_dir()
    old_schema = schema_before_summaries()
    with sqlite3.connect(paths.db) as connection:
        connection.executescript(old_schema)
        connection.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        connection.execute("INSERT INTO plans (plan_id, path, title, state) "
                           "VALUES ('P', 'plans/P.yaml', 't', 'finished')")
        connection.execute("INSERT INTO phases (plan_id, phase_id, position, kind, title, state, attempts) "
                           "VALUES ('P', 'P01', 0, 'impl', 'x', 'passed', 1)")
        connection.execute(
            "INSERT INTO attempts (attempt_id, plan_id, phase_id, number, remediation, state, agent, attempt_dir) "
            "VALUES ('a1', 'P', 'P01', 1, 0, 'passed', 'codex', '/x')")

    result = coord(tmp_path, "status", "--json")

    assert result.returncode == 0, result.stderr
    assert [phase["state"] for phase in json.loads(result.stdout)["phases"]] == ["passed"]
