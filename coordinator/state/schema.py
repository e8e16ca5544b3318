"""The store's SQLite schema, and how a store made by an earlier coord is brought up to it.

Only ``state.store`` executes SQL; this module holds the one definition of the tables it executes it against.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS plans (
    plan_id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    title TEXT NOT NULL,
    state TEXT NOT NULL,               -- a PlanState (coordinator/states.py)
    paused INTEGER NOT NULL DEFAULT 0,
    started_at TEXT,
    updated_at TEXT
);
CREATE TABLE IF NOT EXISTS phases (
    plan_id TEXT NOT NULL,
    phase_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    state TEXT NOT NULL,               -- a PhaseState
    attempts INTEGER NOT NULL DEFAULT 0,
    uncounted_attempts INTEGER NOT NULL DEFAULT 0,  -- of them, not counted against max_attempts
    waiting_until REAL,                -- WAITING: when the agent's usage limit resets (epoch seconds)
    verdict TEXT,                      -- PASS / FAIL of the last judged attempt
    verdict_source TEXT,
    reason TEXT,
    updated_at TEXT,
    PRIMARY KEY (plan_id, phase_id)
);
CREATE TABLE IF NOT EXISTS attempts (
    attempt_id TEXT PRIMARY KEY,       -- uuid; the cookie its processes carry
    plan_id TEXT NOT NULL,
    phase_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    remediation INTEGER NOT NULL,
    state TEXT NOT NULL,               -- an AttemptState
    agent TEXT NOT NULL,
    attempt_dir TEXT NOT NULL,
    resume_session TEXT,
    note TEXT,
    supervisor_pid INTEGER,
    worker_pid INTEGER,
    started_at TEXT,
    ended_at TEXT,
    exit_code INTEGER,
    signal INTEGER,
    stop_reason TEXT,
    cycle INTEGER NOT NULL DEFAULT 0,
    verdict TEXT,
    reason TEXT,
    session_id TEXT,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    cached_input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL,
    last_message TEXT,                 -- the agent's final message (capped at 4000 characters)
    commands INTEGER NOT NULL DEFAULT 0,
    file_changes INTEGER NOT NULL DEFAULT 0,
    UNIQUE (plan_id, phase_id, number)
);
CREATE INDEX IF NOT EXISTS attempts_by_state ON attempts (plan_id, state);  -- the active ones, on every loop pass
CREATE TABLE IF NOT EXISTS snapshots (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    plan_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,              -- of the plan file and the workspace templates
    taken_at TEXT NOT NULL,
    content TEXT NOT NULL              -- plan.snapshot.PlanSnapshot.to_json()
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    plan_id TEXT NOT NULL,
    at TEXT NOT NULL,
    type TEXT NOT NULL,
    phase_id TEXT,
    attempt INTEGER,
    message TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}'
);
"""


ADDED_COLUMNS = {
    "plans": {
        "tampered": "TEXT",  # the first thing a worker changed behind coord's back, or NULL
    },
    "phases": {
        "uncounted_attempts": "INTEGER NOT NULL DEFAULT 0",  # session resumes the agent rejected, usage limits
        "waiting_until": "REAL",  # a WAITING phase: when the usage limit resets
    },
    "attempts": {
        "last_message": "TEXT",
        "commands": "INTEGER NOT NULL DEFAULT 0",
        "file_changes": "INTEGER NOT NULL DEFAULT 0",
    },
}
"""Columns added after a table was first created: stores made by an earlier coord get them on open."""


def missing_columns(connection: sqlite3.Connection) -> list[tuple[str, str, str]]:
    """(table, column, declaration) of every ``ADDED_COLUMNS`` entry the database lacks."""
    missing = []
    for table, columns in ADDED_COLUMNS.items():
        present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        missing += [(table, name, declaration) for name, declaration in columns.items() if name not in present]
    return missing


def add_missing_columns(connection: sqlite3.Connection) -> None:
    for table, name, declaration in missing_columns(connection):
        connection.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")
