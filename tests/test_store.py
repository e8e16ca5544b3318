"""The state store: a database made by an earlier coord gains the columns added since, keeping its rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from coordinator.paths import WorkspacePaths
from coordinator.store import SCHEMA, Store


def test_older_store_gains_new_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    paths = WorkspacePaths(tmp_path)
    paths.tmp.mkdir()
    old_schema = SCHEMA.replace(
        "    last_message TEXT,                 -- the agent's final message (capped at 4000 characters)\n"
        "    commands INTEGER NOT NULL DEFAULT 0,\n"
        "    file_changes INTEGER NOT NULL DEFAULT 0,\n", "")
    assert old_schema != SCHEMA
    with sqlite3.connect(paths.db) as connection:
        connection.executescript(old_schema)
        connection.execute(
            "INSERT INTO attempts (attempt_id, plan_id, phase_id, number, remediation, state, agent, attempt_dir) "
            "VALUES ('a1', 'P', 'P01', 1, 0, 'passed', 'codex', '/x')")

    store = Store.open(paths)
    try:
        row = store.attempt("a1")
        assert row["state"] == "passed" and row["commands"] == 0 and row["last_message"] is None
    finally:
        store.close()
