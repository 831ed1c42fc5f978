"""The audit log: records come back as written, it is append-only, and a kill -9 loses at most the step in flight.

The crash test runs a real writer process, kills it with SIGKILL at random instants (before, during
and after it opened the log), several times over the same file, and checks after each kill that the
database is intact, every step the writer reported as appended is there, exactly as written, and
nothing beyond the one step in flight.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from hardware import Kpis, audit
from hardware.audit import AuditError, AuditLog, AuditRecord, read_runs
from tests.lines import REPO

SENSORS, ACTUATORS = 12, 5


def record(step: int, mode: str = "shadow") -> AuditRecord:
    """A record whose every field is a function of `step`, with NaN and infinities in its arrays."""
    values = np.linspace(0.0, 1.0, SENSORS) + step
    values[3] = np.nan
    values[4] = np.inf
    values[5] = -np.inf
    return AuditRecord(
        step=step,
        wall_time_s=1.7e9 + step,
        mode=mode,
        line_time_s=60.0 * step,
        frame_seq=step + 1,
        values=values,
        stamps=np.full(SENSORS, 60.0 * step - 0.5),
        status={"remote": True, "estop": False, "heartbeat": step, "clock_s": None, "read_at_s": 1.7e9 + step},
        active=None if step % 3 == 0 else np.full(ACTUATORS, 1.0),
        kpis={
            **dataclasses.asdict(Kpis(good_parts=step, energy_cost_per_good_part=0.1, co2_kg_per_good_part=0.2)),
            "energy_kwh": 0.5 * step,
            "flow_time_mean_s": np.inf,
        },
        observation=np.linspace(-1.0, 1.0, 7).astype(np.float32),
        proposed=np.array([0.9, np.nan, 1.1, 1.0, 0.5]),
        verdict="shadow",
        reasons=("rate:press.speed", f"interlock:vibration {step}") if step % 2 else (),
        written=None if step % 2 else np.array([0.9, np.nan, 1.1, 1.0, 0.5]),
        echo=None if step % 2 else step + 100,
        ood=step % 5 == 0,
        latency_ms={"read": 1.25, "total": 2.5 + step},
        artifact_sha256="ab" * 32,
        error="ModbusTimeout: no answer" if step == 7 else None,
    )


def same(a: AuditRecord, b: AuditRecord) -> bool:
    """Field by field, arrays with NaN equal to NaN."""
    for f in dataclasses.fields(AuditRecord):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if x is None or y is None or not np.array_equal(np.asarray(x, float), np.asarray(y, float), equal_nan=True):
                return False
        elif x != y:
            return False
    return True


def test_records_and_meta_come_back_as_written(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    meta = {"line": "flow5", "actuators": ["a", "b"], "limit": np.float64(2.5), "levels": np.arange(3), "x": None}
    with AuditLog(path, meta) as log:
        latencies = [log.append(record(i)) for i in range(10)]
    assert all(ms > 0 for ms in latencies)
    metas, records = AuditLog.read(path)
    assert metas == [{"line": "flow5", "actuators": ["a", "b"], "limit": 2.5, "levels": [0, 1, 2], "x": None}]
    assert len(records) == 10
    assert all(same(r, record(i)) for i, r in enumerate(records))
    assert records[0].kpis["flow_time_mean_s"] == np.inf
    assert records[1].status["clock_s"] is None


def test_the_json_is_standard_and_nan_is_null(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    with AuditLog(path) as log:
        log.append(record(0))
    db = sqlite3.connect(path)
    values, kpis = db.execute('SELECT "values", kpis FROM steps').fetchone()
    db.close()
    assert "NaN" not in values
    assert ",null," in values
    assert '"Infinity"' in values
    assert '"-Infinity"' in values
    assert '"flow_time_mean_s":"Infinity"' in kpis


def test_a_reopen_appends_a_new_run(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    with AuditLog(path, {"run": "first"}) as log:
        log.append(record(0))
        log.append(record(1))
    with AuditLog(path, {"run": "second"}) as log:
        assert log.run == 2
        log.append(record(0, mode="guarded"))
    runs = read_runs(path)
    assert [r.number for r in runs] == [1, 2]
    assert [r.meta["run"] for r in runs] == ["first", "second"]
    assert [len(r.records) for r in runs] == [2, 1]
    assert runs[1].records[0].mode == "guarded"
    assert runs[0].opened_at_s <= runs[1].opened_at_s


@pytest.mark.parametrize(
    "statement",
    ["UPDATE steps SET verdict = 'pass'", "DELETE FROM steps", "UPDATE runs SET meta = '{}'", "DELETE FROM runs"],
)
def test_rows_can_be_neither_changed_nor_deleted(tmp_path: Path, statement: str) -> None:
    path = tmp_path / "audit.sqlite"
    with AuditLog(path) as log:
        log.append(record(0))
    db = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute(statement)
    db.close()
    assert len(AuditLog.read(path)[1]) == 1


def untriggered(path: Path) -> sqlite3.Connection:
    """The log opened as someone who drops its append-only triggers would."""
    db = sqlite3.connect(path, isolation_level=None)
    for table in ("runs", "steps"):
        for verb in ("update", "delete"):
            db.execute(f"DROP TRIGGER {table}_no_{verb}")
    return db


@pytest.mark.parametrize(
    ("statement", "broken"),
    [
        ("DELETE FROM steps WHERE step = 5", r"run 1, step 6 \(record 5 of the run\)"),
        ("UPDATE steps SET written = '[0.5,0.5,0.5,0.5,0.5]' WHERE step = 6", r"run 1, step 6 "),
        ("UPDATE steps SET line_time_s = 1.0 WHERE step = 3", r"run 1, step 3 "),
        ("UPDATE steps SET verdict = 'pass', ood = 0 WHERE step = 0", r"run 1, step 0 "),
        ('UPDATE runs SET meta = \'{"line": "other"}\' WHERE run = 2', r"run 2 does not match"),
        ("DELETE FROM runs WHERE run = 1", r"run 2 does not match"),
        ("DELETE FROM runs WHERE run = 2", r"steps of run 2, no such run"),
        ("DELETE FROM steps WHERE run = 1 AND step = 9", r"run 2 does not match"),  # a middle run's tail cut
        (
            'INSERT INTO steps SELECT id + 100, run, step + 1, wall_time_s, mode, line_time_s, frame_seq, "values", '
            "stamps, status, active, kpis, observation, proposed, verdict, reasons, written, echo, ood, latency_ms, "
            "artifact_sha256, error, chain FROM steps WHERE step = 9 AND run = 1",
            r"run 1, step 10 ",
        ),
        ("UPDATE steps SET frame_seq = frame_seq + 0.9 WHERE run = 1 AND step = 4", r"run 1, step 4 "),
        (
            'INSERT INTO steps SELECT id + 100, run, step + 10, wall_time_s, mode, line_time_s, frame_seq, "values", '
            "stamps, status, active, kpis, observation, proposed, verdict, reasons, written, echo, ood, latency_ms, "
            "artifact_sha256, error, chain FROM steps WHERE step = 9 AND run = 1",
            r"run 1, step 19 ",
        ),
    ],
)
def test_a_record_changed_past_the_triggers_breaks_the_hash_chain(tmp_path: Path, statement: str, broken: str) -> None:
    """Triggers stop mistakes; a record deleted, edited or copied in by someone who dropped them is found on reading."""
    path = tmp_path / "audit.sqlite"
    for run in (1, 2):
        with AuditLog(path, {"line": "flow5", "run": run}) as log:
            for step in range(10):
                log.append(record(step))
    db = untriggered(path)
    db.execute(statement)
    db.close()
    with pytest.raises(AuditError, match=broken + r".*a record was changed, added or removed after it was written"):
        read_runs(path)


def test_values_in_the_form_sqlite_changes_read_back_through_the_chain(tmp_path: Path) -> None:
    """-0.0 (stored as 0), numpy scalars (a BLOB if bound as they are), a bool echo: a log as written reads."""
    path = tmp_path / "audit.sqlite"
    odd = dataclasses.replace(
        record(0), line_time_s=-0.0, wall_time_s=np.float32(1.5e3), frame_seq=np.int64(7), echo=np.int32(3)
    )
    with AuditLog(path) as log:
        log.append(odd)
        log.append(dataclasses.replace(record(1), line_time_s=np.nan, echo=True))
    (run,) = read_runs(path)
    first, second = run.records
    assert (first.line_time_s, first.wall_time_s, first.frame_seq, first.echo) == (0.0, 1500.0, 7, 3)
    assert type(first.frame_seq) is int
    assert np.isnan(second.line_time_s)
    assert second.echo == 1


def test_a_step_out_of_turn_is_refused_at_once(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "audit.sqlite") as log:
        with pytest.raises(AuditError, match="step 1 not appended: step 0 is next"):
            log.append(record(1))
        log.append(record(0))
        with pytest.raises(AuditError, match="step 0 not appended: step 1 is next"):
            log.append(record(0))
    assert [r.step for r in read_runs(tmp_path / "audit.sqlite")[0].records] == [0]


def test_a_reader_beside_a_writer_that_reopens_sees_whole_runs(tmp_path: Path) -> None:
    """Runs and steps are read in one snapshot: a run opened between the two reads was seen as tampering."""
    path = tmp_path / "audit.sqlite"
    with AuditLog(path) as log:
        log.append(record(0))
    stop = time.monotonic() + 2.0

    def reopen() -> None:
        while time.monotonic() < stop:
            with AuditLog(path) as log:
                for step in range(3):
                    log.append(record(step))

    writer = threading.Thread(target=reopen)
    writer.start()
    reads = 0
    try:
        while time.monotonic() < stop:
            runs = read_runs(path)
            assert all(r.records for r in runs[:-1])
            reads += 1
    finally:
        writer.join()
    assert reads > 5
    assert len(read_runs(path)) > 5


def test_a_record_forged_onto_an_earlier_run_with_its_chain_recomputed_breaks_the_next_run(tmp_path: Path) -> None:
    """Runs chain on from each other: only the last run's tail needs the head kept elsewhere."""
    path = tmp_path / "audit.sqlite"
    for steps in (3, 2):
        with AuditLog(path, {"line": "flow5"}) as log:
            for step in range(steps):
                log.append(record(step))
    first = read_runs(path)[0]
    row = audit._stored(audit._KINDS, audit._row(1, record(3)))
    db = untriggered(path)
    db.execute(
        audit._INSERT.replace("(run,", "(id, run,").replace("VALUES (", "VALUES (1000, "),
        (*row, audit._link(first.head, row)),
    )
    db.close()
    with pytest.raises(AuditError, match=r"run 2 does not match the log's hash chain"):
        read_runs(path)


def test_a_value_a_record_cannot_hold_is_refused_as_an_audit_error(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    with AuditLog(path) as log:
        for bad in ({"frame_seq": 2**64}, {"frame_seq": 3.7}, {"error": "\ud800"}):
            with pytest.raises(AuditError, match="step 0 not appended"):
                log.append(dataclasses.replace(record(0), **bad))
        log.append(record(0))  # the log goes on
        log.append(record(1))
    db = untriggered(path)
    db.execute("UPDATE steps SET error = x'00' WHERE step = 1")
    db.close()
    with pytest.raises(AuditError, match="a record does not decode"):
        read_runs(path)


def test_the_head_of_a_run_changes_with_any_of_its_records_and_is_what_the_writer_ends_on(tmp_path: Path) -> None:
    heads = []
    for last in (record(9), dataclasses.replace(record(9), proposed=np.full(5, 1.0))):
        path = tmp_path / f"{len(heads)}.sqlite"
        with AuditLog(path, {"line": "flow5"}) as log:
            for step in range(9):
                log.append(record(step))
            log.append(last)
            heads.append(log.head)
        (run,) = read_runs(path)
        assert run.head == log.head
    assert heads[0] != heads[1]
    assert len(heads[0]) == 64
    # a record cut off the end leaves a chain that reads, but not to the head the writer ended on
    db = untriggered(path)
    db.execute("DELETE FROM steps WHERE step = 9")
    db.close()
    (run,) = read_runs(path)
    assert len(run.records) == 9
    assert run.head != heads[1]


def test_a_bad_record_is_refused_whole(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    with AuditLog(path) as log:
        log.append(record(0))
        with pytest.raises(AuditError, match="step 0 not appended"):
            log.append(record(0))  # the step is in this run already
        with pytest.raises(AuditError, match="CHECK"):
            log.append(dataclasses.replace(record(1), verdict="maybe"))
    with pytest.raises(AuditError, match="closed"):
        log.append(record(2))
    assert [r.step for r in AuditLog.read(path)[1]] == [0]


def test_a_file_that_is_not_an_audit_log_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "none.sqlite"
    with pytest.raises(AuditError, match=f"{missing}: no such file"):
        AuditLog.read(missing)
    text = tmp_path / "text.sqlite"
    text.write_text("not a database, " * 100)
    with pytest.raises(AuditError, match=str(text)):
        AuditLog.read(text)
    with pytest.raises(AuditError, match=str(text)):
        AuditLog(text)
    other = tmp_path / "other.sqlite"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE steps (x)")
    db.commit()
    db.close()
    with pytest.raises(AuditError, match="not an audit log"):
        AuditLog(other)
    with pytest.raises(AuditError, match="not an audit log"):
        AuditLog.read(other)


def test_a_folder_given_as_the_log_is_refused_as_such_with_no_lock_beside_it(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    monkeypatch.chdir(folder)
    for given in (folder, Path(""), Path(".")):  # audit= and audit=. on the command line
        with pytest.raises(AuditError, match=f"audit log {given}: a folder, not a file"):
            AuditLog(given)
        with pytest.raises(AuditError, match=f"audit log {given}: a folder, not a file"):
            read_runs(given)
    assert sorted(tmp_path.iterdir()) == [folder]
    assert not list(folder.iterdir())


def test_a_log_its_writer_is_still_creating_reads_as_no_runs(tmp_path: Path) -> None:
    """Between the writer's connect and its schema's commit the file is an empty database: no runs yet, no error."""
    path = tmp_path / "audit.sqlite"
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"  # what AuditLog does before its schema
    try:
        assert read_runs(path) == []
    finally:
        db.close()
    with AuditLog(path, meta={"line": "flow5"}) as log:
        log.append(record(0))
    assert [len(r.records) for r in read_runs(path)] == [1]


def test_append_is_fast(tmp_path: Path) -> None:
    """The median append stays far below the 1 ms budget (a WAL checkpoint every ~1000 pages costs a few ms)."""
    records = [record(i) for i in range(500)]
    with AuditLog(tmp_path / "audit.sqlite") as log:
        latencies = [log.append(r) for r in records]
    assert np.median(latencies) < 1.0


WRITER = textwrap.dedent(
    """
    import sys
    from tests.integration.test_audit import record
    from hardware.audit import AuditLog

    log = AuditLog(sys.argv[1], {"writer": int(sys.argv[2])})
    print("open", flush=True)
    step = 0
    while True:
        log.append(record(step))
        print(step, flush=True)
        step += 1
    """
)


@pytest.mark.slow
def test_a_kill_at_any_instant_loses_at_most_the_step_in_flight(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    rng = np.random.default_rng(20261201)
    kills = 10
    counts: dict[int, int] = {}  # records of each earlier writer's run
    deadline = time.monotonic() + 60.0
    for k in range(kills):
        printed = tmp_path / f"printed_{k}.txt"
        with printed.open("w") as out:
            child = subprocess.Popen(
                [sys.executable, "-c", WRITER, str(path), str(k)], cwd=REPO, stdout=out, stderr=subprocess.PIPE
            )
            # half the kills land while it appends, the others at any instant from its start (it opens
            # the log about 0.3 s in)
            if k % 2:
                while "open" not in printed.read_text() and child.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 0.3))
            else:
                time.sleep(rng.uniform(0.0, 0.8))
            os.kill(child.pid, signal.SIGKILL)
            _, err = child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL, err.decode()
        lines = printed.read_text().split()
        steps = [int(x) for x in lines if x != "open"]
        assert steps == list(range(len(steps)))
        if not path.exists():
            assert not steps
            continue
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
        runs = read_runs(path)
        this = [r for r in runs if r.meta == {"writer": k}]
        assert len(this) == 1 if "open" in lines else len(this) <= 1
        logged = this[0].records if this else []
        assert len(logged) in (len(steps), len(steps) + 1)  # at most the one in flight beyond the printed
        assert all(same(r, record(i)) for i, r in enumerate(logged))
        assert {r.meta["writer"]: len(r.records) for r in runs if r.meta["writer"] != k} == counts  # earlier intact
        counts.update({k: len(logged)} if this else {})
        assert time.monotonic() < deadline, "the kill test ran out of time"
    assert sum(1 for n in counts.values() if n > 0) >= kills // 2
    with AuditLog(path, {"writer": "after"}) as log:  # and the log takes appends again
        log.append(record(0))
    assert read_runs(path)[-1].records[0].step == 0


def test_one_writer_at_a_time_and_a_killed_one_leaves_no_lock(tmp_path: Path) -> None:
    """Two writers broke the chain for good (each run chains on its own last link): the second is refused."""
    path = tmp_path / "audit.sqlite"
    printed = tmp_path / "printed.txt"
    with printed.open("w") as out:
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "0"], cwd=REPO, stdout=out)
        try:
            deadline = time.monotonic() + 60.0
            while "open" not in printed.read_text():
                assert child.poll() is None, "the writer ended before it opened the log"
                assert time.monotonic() < deadline, "the writer never opened the log"
                time.sleep(0.01)
            with pytest.raises(AuditError, match=r"another run is appending to it \(it holds audit.sqlite.writer\)"):
                AuditLog(path, {"writer": 1})
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
    with AuditLog(path, {"writer": 2}) as log:  # the lock went with the killed process
        with pytest.raises(AuditError, match="another run is appending to it"):
            AuditLog(path, {"writer": 3})  # in one process too
        log.append(record(0))
    with AuditLog(path, {"writer": 4}):  # closed: free again
        pass
    assert [r.meta["writer"] for r in read_runs(path)] == [0, 2, 4]  # the refused never opened a run; chain intact


def test_a_log_two_writers_broke_is_refused_at_open_naming_the_run(tmp_path: Path, monkeypatch) -> None:
    """What two writers at once left (before the lock): every later run appended to a chain no reader accepts."""
    path = tmp_path / "audit.sqlite"
    with AuditLog(path, {"writer": 0}) as log:
        log.append(record(0))
    with monkeypatch.context() as unlocked:  # the two writers the lock now refuses
        unlocked.setattr(AuditLog, "_hold_writer_lock", lambda self: None)
        with AuditLog(path, {"writer": 1}) as first, AuditLog(path, {"writer": 2}) as second:
            for step in range(2):
                first.append(record(step))
                second.append(record(step))
    with pytest.raises(AuditError, match="run 3 does not match the log's hash chain"):
        read_runs(path)
    refused = r"run 3 does not match the log's hash chain \(.*, or two runs wrote the log at once\); a run appended"
    with pytest.raises(AuditError, match=refused):
        AuditLog(path, {"writer": 3})
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT max(run) FROM runs").fetchone()[0] == 3  # the refused opened no run


def test_a_log_whose_last_record_was_altered_is_refused_at_open(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    with AuditLog(path, {"writer": 0}) as log:
        for step in range(3):
            log.append(record(step))
    with sqlite3.connect(path) as db:
        db.execute("DROP TRIGGER steps_no_update")
        db.execute("UPDATE steps SET verdict = 'block' WHERE step = 2")
    with pytest.raises(AuditError, match="run 1, step 2 does not match the log's hash chain"):
        AuditLog(path, {"writer": 1})
