"""The fork server starts supervisors by forking: each is a session of its own that outlives the server, runs the
worker with the coordinator's environment, and records its exit; a server that is gone, killed or silent never
makes an attempt start twice or not at all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest

from coordinator.agents import WorkerCommand, get_agent
from coordinator.agents.base import LaunchRequest
from coordinator.engine.launch import supervisor_spec
from coordinator.plan.model import AgentProfile, Policy
from coordinator.process import fork_client, fork_server
from coordinator.process.executor import StartError
from coordinator.process.fork_client import ForkServer
from coordinator.process.local import LocalExecutor, processes_of_attempt, supervisor_alive
from coordinator.process.records import ExitRecord, Identity, SupervisorSpec
from tests.helpers import wait_until


def spec_for(tmp_path: Path, command: WorkerCommand, name: str = "a") -> SupervisorSpec:
    attempt_dir, records_dir = tmp_path / name / "attempt", tmp_path / name / "records"
    attempt_dir.mkdir(parents=True)
    return supervisor_spec(str(uuid.uuid4()), "P01", 1, command, cwd=tmp_path, attempt_dir=attempt_dir,
                           records_dir=records_dir, env={"EXTRA": "from the spec"}, policy=Policy(kill_grace=0.5),
                           socket_path=None)


def shell(script: str) -> WorkerCommand:
    return WorkerCommand(argv=("/bin/sh", "-c", script))


@pytest.fixture
def server(tmp_path: Path) -> ForkServer:
    # AF_UNIX paths are short: the socket goes to a folder of its own under /tmp, not under tmp_path.
    folder = Path(f"/tmp/coord-fork-test-{uuid.uuid4().hex[:8]}")
    folder.mkdir(mode=0o700)
    client = ForkServer(folder / "fork.sock", tmp_path / "fork-server.log")
    yield client
    client.quit()
    for leftover in folder.iterdir():
        leftover.unlink()
    folder.rmdir()


def server_pid(client: ForkServer) -> int:
    """The pid of the server listening for ``client`` (it holds the lock file)."""
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if str(client.socket_path) in cmdline and "fork_server.py" in " ".join(cmdline):
            return process.pid
    raise AssertionError("no fork server is running")


def test_a_forked_supervisor_runs_the_worker_with_the_coordinators_environment_and_records_its_exit(
        tmp_path: Path, server: ForkServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COORD_TEST_SECRET", "from the environment")
    executor = LocalExecutor(fork_server=server)
    spec = spec_for(tmp_path, shell('echo "$EXTRA / $COORD_TEST_SECRET / $COORD_ATTEMPT_ID"; exit 3'))
    identity = executor.start(spec)
    assert identity.supervisor_pid != os.getpid() and identity.supervisor_pid not in [
        child.pid for child in psutil.Process().children()], "the supervisor is the server's child, not ours"
    handle = executor_handle(spec)
    record = wait_until(lambda: executor.result(handle))
    assert record.exit_code == 3
    first_line = Path(spec.log_path).read_text().splitlines()[0]
    assert first_line == f"from the spec / from the environment / {spec.attempt_id}"
    assert os.getsid(server_pid(server)) != os.getsid(0)


def executor_handle(spec: SupervisorSpec):  # noqa: ANN201 - the executor's own handle type
    from coordinator.process.executor import AttemptHandle

    return AttemptHandle(spec.attempt_id, Path(spec.records_dir))


def test_a_supervisor_outlives_its_server_and_still_records_the_end(tmp_path: Path, server: ForkServer) -> None:
    executor = LocalExecutor(fork_server=server)
    go = tmp_path / "go"
    spec = spec_for(tmp_path, shell(f"while [ ! -e {go} ]; do sleep 0.05; done; exit 7"))
    identity = executor.start(spec)
    os.kill(server_pid(server), signal.SIGKILL)
    wait_until(lambda: not server.socket_path.exists() or not _listening(server.socket_path))
    assert supervisor_alive(identity), "the supervisor went with its server"
    go.touch()
    assert wait_until(lambda: executor.result(executor_handle(spec))).exit_code == 7


def _listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def test_a_killed_server_is_replaced_at_the_next_launch(tmp_path: Path, server: ForkServer) -> None:
    executor = LocalExecutor(fork_server=server)
    executor.start(spec_for(tmp_path, shell("exit 0"), "first"))
    first = server_pid(server)
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: not psutil.pid_exists(first) or psutil.Process(first).status() == psutil.STATUS_ZOMBIE)
    assert server.socket_path.exists(), "a killed server leaves its socket file"
    spec = spec_for(tmp_path, shell("exit 0"), "second")
    executor.start(spec)
    assert server_pid(server) != first
    assert wait_until(lambda: executor.result(executor_handle(spec))).exit_code == 0


def test_an_idle_server_exits_and_a_quit_server_at_once(tmp_path: Path) -> None:
    folder = Path(f"/tmp/coord-fork-test-{uuid.uuid4().hex[:8]}")
    folder.mkdir(mode=0o700)
    try:
        socket_path = folder / "idle.sock"
        started = time.monotonic()
        subprocess.run([sys.executable, "-I", "-S", fork_server.__file__, str(socket_path),
                        str(folder / "idle.lock"), "0.3"], check=True)
        wait_until(lambda: _listening(socket_path), timeout=5)
        wait_until(lambda: not socket_path.exists(), timeout=5)
        assert time.monotonic() - started < 5
        client = ForkServer(folder / "quit.sock", tmp_path / "log")
        client.spawn(spec_for(tmp_path, shell("exit 0")).write_marshal(_records(tmp_path)), dict(os.environ))
        pid = server_pid(client)
        client.quit()
        wait_until(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
                   timeout=2)
        assert not client.socket_path.exists()
    finally:
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()


def _records(tmp_path: Path) -> Path:
    records = tmp_path / "a" / "records"
    records.mkdir(parents=True, exist_ok=True)
    return records


def test_a_server_that_takes_the_request_and_never_answers_never_gets_a_second_supervisor_started(
        tmp_path: Path) -> None:
    folder = Path(f"/tmp/coord-fork-test-{uuid.uuid4().hex[:8]}")
    folder.mkdir(mode=0o700)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(folder / "silent.sock"))
    listener.listen(8)
    requests: list[bytes] = []

    def take_and_hang_up() -> None:
        connection, _ = listener.accept()
        with connection:
            requests.append(connection.recv(1 << 20))

    taker = threading.Thread(target=take_and_hang_up, daemon=True)
    taker.start()
    try:
        executor = LocalExecutor(identity_timeout=1.0,
                                 fork_server=ForkServer(folder / "silent.sock", tmp_path / "log"))
        spec = spec_for(tmp_path, shell("exit 0"))
        with pytest.raises(StartError, match="did not start in time"):
            executor.start(spec)
        taker.join(timeout=5)
        assert requests and spec.attempt_id.encode() in requests[0], "the request reached the server"
        assert Identity.read(Path(spec.records_dir), spec.attempt_id) is None
        assert not Path(spec.log_path).exists(), "a supervisor of its own was started after all"
    finally:
        listener.close()
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()


def test_an_inline_shell_runner_dies_with_its_supervisor_and_its_command_is_found_by_the_cookie(
        tmp_path: Path, server: ForkServer) -> None:
    attempt_dir = tmp_path / "a" / "attempt"
    attempt_dir.mkdir(parents=True)
    agent = get_agent(AgentProfile(name="shell", base="shell"))
    command = agent.build_command(LaunchRequest(
        prompt_path=attempt_dir / "prompt.md", attempt_dir=attempt_dir, workdir=tmp_path, resume_session=None,
        script=("sleep 60",), phase_id="P01", workspace=tmp_path, timeout=600.0, kill_grace=0.5,
        records_dir=tmp_path / "a" / "records"))
    assert command.inline_runner == "shell_runner"
    spec = supervisor_spec(str(uuid.uuid4()), "P01", 1, command, cwd=tmp_path, attempt_dir=attempt_dir,
                           records_dir=tmp_path / "a" / "records", env={}, policy=Policy(kill_grace=0.5),
                           socket_path=None)
    executor = LocalExecutor(fork_server=server)
    identity = executor.start(spec)
    sleeper = wait_until(lambda: processes_of_attempt(spec.attempt_id))
    runner = psutil.Process(identity.worker_pid)
    assert "sleep" in " ".join(sleeper[0].cmdline())
    os.kill(identity.supervisor_pid, signal.SIGKILL)
    wait_until(lambda: not runner.is_running() or runner.status() == psutil.STATUS_ZOMBIE, timeout=5)
    assert executor.kill_processes(spec.attempt_id, grace=0.5)
    assert processes_of_attempt(spec.attempt_id) == []
    assert ExitRecord.read(Path(spec.records_dir), spec.attempt_id) is None


def test_the_socket_changes_with_the_supervisors_code() -> None:
    digest = fork_client.code_digest()
    assert len(digest) == 12 and digest == fork_client.code_digest()
