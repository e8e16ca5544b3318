"""The worker-log size cap and the readers that follow a log across its trims.

The trim is the supervisor's real ``LogCap`` on a real file (``fallocate`` collapse); the follower is the one
``coord logs -f`` and the dashboard use. Skips where the filesystem cannot collapse a range (tmpfs, btrfs).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.process.log_cap import LogCap
from coordinator.util.logfollow import LogFollower

MIB = 1024 * 1024


def numbered_lines(start: int, count: int) -> bytes:
    return b"".join(b"line %08d " % n + b"." * 100 + b"\n" for n in range(start, start + count))


def line_numbers(data: bytes) -> list[int]:
    return [int(line.split()[1]) for line in data.splitlines() if line.startswith(b"line ")]


def cap_log(path: Path, cap_bytes: int) -> LogCap:
    cap = LogCap(str(path), cap_bytes)
    cap.enforce()
    if cap.unsupported:
        cap.close()
        pytest.skip(f"log cap unsupported here: {cap.unsupported}")
    return cap


def test_trim_keeps_head_and_tail_and_marks_the_cut(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    original = numbered_lines(0, 30_000)  # about 3.3 MiB
    log.write_bytes(original)

    cap = cap_log(log, 1 * MIB)
    record = cap.close()

    data = log.read_bytes()
    assert len(data) <= 1 * MIB
    assert record["dropped_bytes"] == len(original) - len(data)
    head, marker, tail = data.partition(b" MiB of worker output dropped here; the log is capped at 1 MiB]\n")
    assert marker
    assert line_numbers(head)[0] == 0
    assert line_numbers(tail)[-1] == 29_999
    assert b"%.1f" % (record["dropped_bytes"] / MIB) in head[-200:]


def test_follower_resumes_exactly_where_it_was_after_a_trim(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_bytes(numbered_lines(0, 30_000))
    follower = LogFollower(log)
    assert line_numbers(follower.read().data)[-1] == 29_999

    with open(log, "ab") as handle:
        handle.write(numbered_lines(30_000, 100))
    cap_log(log, 1 * MIB).close()
    with open(log, "ab") as handle:
        handle.write(numbered_lines(30_100, 100))

    chunk = follower.read()
    assert line_numbers(chunk.data) == list(range(30_000, 30_200))
    assert chunk.note is not None and "nothing missed" in chunk.note


def test_follower_reads_on_through_the_marker_when_its_place_was_kept(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_bytes(numbered_lines(0, 100))
    follower = LogFollower(log)
    assert line_numbers(follower.read().data) == list(range(100))

    with open(log, "ab") as handle:
        handle.write(numbered_lines(100, 60_000))
    cap_log(log, 1 * MIB).close()

    data = follower.read().data
    head, marker, tail = data.partition(b" MiB of worker output dropped here;")
    assert marker and line_numbers(head)[0] == 100
    assert line_numbers(tail)[-1] == 60_099


def test_follower_says_when_output_it_had_not_read_was_dropped(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_bytes(numbered_lines(0, 10_000))  # past the 512 KiB head the trim keeps
    follower = LogFollower(log)
    assert line_numbers(follower.read().data)[-1] == 9_999

    with open(log, "ab") as handle:
        handle.write(numbered_lines(10_000, 60_000))  # outgrows the old offset: the size alone hides the trim
    cap_log(log, 1 * MIB).close()

    chunk = follower.read()
    numbers = line_numbers(chunk.data)
    assert numbers[0] > 10_000 and numbers == list(range(numbers[0], 70_000))
    assert chunk.note is not None and "dropped" in chunk.note


def test_follower_holds_back_a_partial_line_until_the_end(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_bytes(b'{"type":"thread.started"}\n{"type":"turn.')
    follower = LogFollower(log)

    assert follower.read().data == b'{"type":"thread.started"}\n'
    assert follower.read(final=True).data == b'{"type":"turn.'


def test_follower_starts_near_the_end_of_a_big_log_on_a_line(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_bytes(numbered_lines(0, 1000))

    chunk = LogFollower(log, tail_bytes=1000).read()

    assert chunk.data.startswith(b"line ")
    assert line_numbers(chunk.data)[-1] == 999 and len(chunk.data) <= 1000
    assert chunk.note is not None and "earlier output" in chunk.note


def test_follower_settles_after_a_trim_that_leaves_an_unfinished_line(tmp_path: Path) -> None:
    # A progress bar (\r, no newline) longer than the kept tail: after the trim the follower resumes at the
    # marker once, then waits for the line to end — no repeated notes, no bytes delivered twice.
    log = tmp_path / "worker.log"
    log.write_bytes(numbered_lines(0, 6000))
    follower = LogFollower(log)
    follower.read()
    with open(log, "ab") as handle:
        handle.write(b"progress " + b"#\r" * (400 * 1024))
    cap_log(log, 1 * MIB).close()

    reads = [follower.read() for _ in range(4)]

    assert [chunk.note is not None for chunk in reads] == [True, False, False, False]
    assert all(chunk.data == b"" for chunk in reads[1:])
    with open(log, "ab") as handle:
        handle.write(b" done\n")
    final = follower.read()
    assert final.note is None and final.data.endswith(b"#\r done\n")
