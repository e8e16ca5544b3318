"""The files the supervisor writes are read back by their one typed definition each: a real supervisor's
``identity.json`` and ``exit.json`` round-trip through ``Identity`` and ``ExitRecord``, and the spec the
coordinator writes is exactly what the supervisor expects."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from coordinator.agents import WorkerCommand
from coordinator.engine.launch import supervisor_spec
from coordinator.plan.model import Policy
from coordinator.process import proc_scan, supervisor
from coordinator.process.local import LocalExecutor, start_supervisor
from coordinator.process.records import ExitRecord, Identity, SupervisorSpec
from tests.helpers import wait_until


def spec_for(tmp_path: Path, script: str) -> SupervisorSpec:
    attempt_dir, records_dir = tmp_path / "attempt", tmp_path / "records"
    attempt_dir.mkdir()
    return supervisor_spec(str(uuid.uuid4()), "P01", 1, WorkerCommand(argv=("/bin/sh", "-c", script)),
                           cwd=tmp_path, attempt_dir=attempt_dir, records_dir=records_dir, env={"EXTRA": "1"},
                           policy=Policy(kill_grace=0.5), socket_path=None)


def test_the_spec_has_the_keys_the_supervisor_reads(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, "true")
    data = spec.to_json()
    assert set(supervisor.SPEC_KEYS) <= set(data)
    assert set(data) - set(supervisor.SPEC_KEYS) <= {"log_cap_bytes", "after_exit_argv", "inline_runner"}
    spec.write(Path(spec.attempt_dir))
    assert SupervisorSpec.read(Path(spec.attempt_dir)) == spec


def test_a_real_supervisors_records_read_back_typed(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, 'sleep 30 & echo "$EXTRA"; exit 3')
    process = start_supervisor(spec)
    records_dir, attempt_dir = Path(spec.records_dir), Path(spec.attempt_dir)
    assert wait_until(lambda: ExitRecord.read(records_dir, spec.attempt_id) is not None, timeout=20)
    process.wait(timeout=10)
    # The records folder is the truth; the attempt folder people read gets the same records.
    for name in ("spec.json", "identity.json", "exit.json"):
        assert (attempt_dir / name).read_text() == (records_dir / name).read_text(), name

    identity = Identity.read(records_dir, spec.attempt_id)
    assert identity is not None and identity.supervisor_pid == process.pid and identity.worker_pid
    assert identity.boot_id == proc_scan.boot_id() and identity.started_at
    record = ExitRecord.read(records_dir, spec.attempt_id)
    assert record is not None
    assert (record.exit_code, record.signal, record.how) == (3, None, "exit code 3")
    assert record.started_at == identity.started_at and record.ended_at and record.duration_s is not None
    # The `sleep` it left behind was killed by the supervisor and is named in the record.
    assert [name for name in record.leftovers.values()] == ["sleep"]
    assert (attempt_dir / "worker.log").read_text().splitlines()[0] == "1"
    # Every key the supervisor wrote is a field of the record: nothing it says is dropped on the floor.
    written = json.loads((records_dir / "exit.json").read_text())
    assert set(written) - {"phase_id", "attempt_number"} == set(ExitRecord.__dataclass_fields__)


def test_foreign_or_torn_records_read_as_missing(tmp_path: Path) -> None:
    (tmp_path / "exit.json").write_text(json.dumps({"attempt_id": "someone-else", "exit_code": 0}))
    (tmp_path / "identity.json").write_text('{"attempt_id": "a", "supervisor_pid": ')
    assert ExitRecord.read(tmp_path, "a") is None
    assert Identity.read(tmp_path, "a") is None
    (tmp_path / "exit.json").write_text(json.dumps({"attempt_id": "a", "exit_code": "zero", "stragglers": "x"}))
    record = ExitRecord.read(tmp_path, "a")
    assert record is not None and record.exit_code is None and record.stragglers == ()
    os.unlink(tmp_path / "exit.json")
    assert ExitRecord.read(tmp_path, "a") is None


def test_a_supervisor_gone_before_its_identity_was_read_still_reports_it(tmp_path: Path) -> None:
    # The loop may reap a quick supervisor (poll_ended) before it looks for its identity: the launch must still
    # be recorded from identity.json, not lost or crashed on.
    executor = LocalExecutor()
    spec = spec_for(tmp_path, "true")
    executor.spawn(spec)
    assert wait_until(lambda: ExitRecord.read(Path(spec.records_dir), spec.attempt_id) is not None, timeout=20)
    assert wait_until(executor.poll_ended, timeout=10)  # reaped, and dropped from the executor's children

    found = executor.started(spec.attempt_id)

    assert isinstance(found, Identity) and found.worker_pid
