"""The audit log: an append-only, crash-safe record of every control step of a deployment.

One SQLite database (stdlib `sqlite3`, nothing to install) in WAL mode holds two tables:

- `runs`: one row per opening of the log (`AuditLog(...)`), with the run-level `meta` the caller
  gives (line, sensors, actuators, task, artifact, mode, guard config, line definition, ...) as JSON
  and the wall-clock time it was opened;
- `steps`: one row per `AuditRecord`, scalars as columns, arrays and mappings as JSON text. JSON has
  no NaN or infinity: a non-finite number is written as `null` (NaN) or the strings `"Infinity"` /
  `"-Infinity"`, so the text stays standard JSON for any tool. Arrays read back as float arrays with
  their NaN and infinities; in the mappings (`status`, `kpis`, `latency_ms`) the infinities come
  back as floats and a NaN as None. `meta` reads back as plain JSON.

Each `append` is one transaction, committed when it returns: a `kill -9` at any instant loses at
most the record in flight, and the database reopens intact. `PRAGMA synchronous=NORMAL` makes that
hold for process kills (the committed WAL frames are in the operating system's hands); a power loss
or an operating-system crash may lose the last few transactions, never the database itself.
Nothing ever updates or deletes a row: triggers refuse `UPDATE` and `DELETE` on both tables, and a
reopened log appends a new run.

Triggers stop mistakes, not someone who drops them. So every row also carries `chain`, one SHA-256
hash chain through the whole log: a run's link hashes the last link before it (the previous run's
last record's, "" for run 1) and its row, each step's the link before it and its row as stored.
Reading checks every link and that runs and steps are numbered without gaps: a record edited,
inserted or deleted anywhere, or added to or cut from any run but the last, fails the check. The
last run's `head` (its last link) changes with any record of the log, so one kept elsewhere
(deploy prints it when it stops) also shows records cut from the end or a chain rewritten whole.
"""

from __future__ import annotations

import enum
import errno
import fcntl
import hashlib
import json
import math
import os
import shutil
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

FORMAT = 2  # `PRAGMA user_version` of an audit log; another value is another format (1: before the chain)
MODES = ("shadow", "guarded")
VERDICTS = ("pass", "clip", "block", "shadow")
_INF, _NEG_INF = "Infinity", "-Infinity"


@dataclass(frozen=True)
class AuditRecord:
    """One control step: what the line showed, what the policy proposed, what the guard did, what went out.

    Arrays are in the spec's order (sensors for `values` and `stamps`, actuators for `active`,
    `proposed` and `written`); NaN is allowed in any of them.
    """

    step: int  # 0, 1, 2, ... within one run
    wall_time_s: float  # time.time() when the step began, s since the epoch
    mode: str  # "shadow" or "guarded"
    line_time_s: float  # frame.time, s on the line clock
    frame_seq: int
    values: np.ndarray  # frame.values
    stamps: np.ndarray  # frame.stamps, s on the line clock
    status: dict[str, Any]  # LineStatus fields but `active`, as plain data
    active: np.ndarray | None  # setpoints the line ran (LineStatus.active)
    kpis: dict[str, float]  # dataclasses.asdict(frame.kpis)
    observation: np.ndarray
    proposed: np.ndarray  # the policy's proposed setpoints
    verdict: str  # "pass" | "clip" | "block" (guarded) or "shadow"
    reasons: tuple[str, ...]  # the guard's reasons (in shadow mode: what the guard would have done)
    written: np.ndarray | None  # the setpoints written; None when only a heartbeat (or nothing) went out
    echo: int | None  # the PLC's echo of the written command's sequence number
    ood: bool  # the observation was out of the training distribution
    latency_ms: dict[str, float]  # per stage (read, observe, infer, guard, write, log) and total, ms; log: the
    # previous record's append, absent from a run's first record
    artifact_sha256: str
    error: str | None = None  # a fault met this step (the typed error's message)


@dataclass
class AuditRun:
    """One opening of an audit log: its number (from 1), when it was opened, its meta and its records."""

    number: int
    opened_at_s: float  # time.time() when the log was opened for this run, s since the epoch
    meta: dict[str, Any]
    records: list[AuditRecord]
    head: str = ""  # the hash chain's last link: of the last record, or of the run's row before any


class AuditError(Exception):
    """An audit log that cannot be read or written; the message names the file."""


class AuditSpaceLow(AuditError):
    """The audit log's disk has less room than a run keeps in reserve: a step that acts might go unrecorded."""


# steps columns after `id` and `run`: (column, SQL type and constraint); the order of AuditRecord's fields
_COLUMNS = (
    ("step", "INTEGER NOT NULL CHECK (step >= 0)"),
    ("wall_time_s", "REAL NOT NULL"),
    ("mode", f"TEXT NOT NULL CHECK (mode IN {MODES})"),
    ("line_time_s", "REAL"),
    ("frame_seq", "INTEGER NOT NULL"),
    ("values", "TEXT NOT NULL"),
    ("stamps", "TEXT NOT NULL"),
    ("status", "TEXT NOT NULL"),
    ("active", "TEXT"),
    ("kpis", "TEXT NOT NULL"),
    ("observation", "TEXT NOT NULL"),
    ("proposed", "TEXT NOT NULL"),
    ("verdict", f"TEXT NOT NULL CHECK (verdict IN {VERDICTS})"),
    ("reasons", "TEXT NOT NULL"),
    ("written", "TEXT"),
    ("echo", "INTEGER"),
    ("ood", "INTEGER NOT NULL CHECK (ood IN (0, 1))"),
    ("latency_ms", "TEXT NOT NULL"),
    ("artifact_sha256", "TEXT NOT NULL"),
    ("error", "TEXT"),
)
_NAMES = ", ".join(f'"{c}"' for c, _ in _COLUMNS)
_INSERT = f"INSERT INTO steps (run, {_NAMES}, chain) VALUES ({', '.join('?' * (len(_COLUMNS) + 2))})"  # noqa: S608 (constant)
_SELECT = f"SELECT run, {_NAMES}, chain FROM steps ORDER BY id"  # noqa: S608 (constant)
_SELECT_RUN = f"SELECT run, {_NAMES}, chain FROM steps WHERE run = ?"  # noqa: S608 (constant)
# each value's SQL type (`run` first), to write it in the form SQLite reads back (`_stored`)
_KINDS = ("INTEGER", *(t.split()[0] for _, t in _COLUMNS))
_RUN_KINDS = ("INTEGER", "REAL", "TEXT")
_SCHEMA = (
    "CREATE TABLE runs (run INTEGER PRIMARY KEY, opened_at_s REAL NOT NULL, meta TEXT NOT NULL, chain TEXT NOT NULL)",
    "CREATE TABLE steps (id INTEGER PRIMARY KEY, run INTEGER NOT NULL REFERENCES runs (run), "
    + ", ".join(f'"{c}" {t}' for c, t in _COLUMNS)
    + ", chain TEXT NOT NULL, UNIQUE (run, step))",
    *(
        f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
        for table in ("runs", "steps")
        for verb in ("UPDATE", "DELETE")
    ),
    f"PRAGMA user_version = {FORMAT}",
)


class AuditLog:
    """The append-only audit log of a deployment: one run per opening, one record per control step.

    `run` is this opening's number and `head` the hash chain's last link (of the last record
    appended, or of the run's row before any): keep it where the log's writer cannot reach, and a
    log read later must end on it.

    One writer at a time: each run chains on its own last link, so two writing one log at once
    would break the chain for good. An open `AuditLog` holds an exclusive `flock` on the sidecar
    file `<log>.writer` (left in place; the lock goes with the process, `kill -9` included), and a
    second one, in any process, is refused. Readers (`read_runs`) need no lock and may read while a
    run writes (one snapshot, to the last record committed). A log whose last run breaks the chain
    (what two writers at once left before the lock) is refused too: a run appended to it could not be
    reported. Only the tail is checked at opening (`_log_head`); reading checks the whole chain.

    Example:
        with AuditLog("audit.sqlite", meta={"line": "flow5", ...}) as log:
            latency_ms = log.append(record)
    """

    def __init__(self, path: str | Path, meta: Mapping[str, Any] | None = None) -> None:
        """Create the log, or reopen it to append; either way a new run starts, with `meta` as its run data.

        Args:
            path: the database file (made if missing; its folder must exist).
            meta: run-level plain data (numpy values, enums and paths are converted), written once.

        Raises:
            AuditError: the path is a folder, the file is not an audit log of this format, its last run
                breaks the hash chain, another run holds it, or it cannot be opened.
            TypeError: `meta` holds a value JSON cannot carry.
        """
        self.path = Path(path)
        meta_json = _json(dict(meta or {}))
        self._db: sqlite3.Connection | None = None
        self._writer: int | None = None
        if self.path.is_dir():  # "" and "." too: no file to open, and its lock would land beside the folder
            raise AuditError(f"audit log {self.path}: a folder, not a file; name a file (<folder>/audit.sqlite)")
        self._hold_writer_lock()
        try:
            # one writer, one thread at a time: the thread that opens the log need not be the one appending
            self._db = db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":  # e.g. a file system without shared memory: no crash safety as promised
                raise AuditError(f"audit log {self.path}: SQLite refused WAL mode (journal mode {mode})")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA wal_autocheckpoint=0")  # the writer checkpoints between steps (`checkpoint`)
            db.execute("BEGIN IMMEDIATE")
            try:
                self._create_or_check(db)
                last = db.execute("SELECT max(run) FROM runs").fetchone()[0]
                self.run = (last or 0) + 1  # this run's number, from 1
                row = _stored(_RUN_KINDS, (self.run, time.time(), meta_json))
                self.head = _link(_log_head(self.path, db, last), row)  # on from the last run's last link
                db.execute("INSERT INTO runs (run, opened_at_s, meta, chain) VALUES (?, ?, ?, ?)", (*row, self.head))
                db.execute("COMMIT")
                self._next_step = 0
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self.close()
            raise AuditError(f"audit log {self.path}: cannot open it for appending: {exc}") from exc
        except AuditError:
            self.close()
            raise

    def _hold_writer_lock(self) -> None:
        """Take the log's writer lock (`<log>.writer`) for this object's life, or refuse."""
        lock = self.path.with_name(f"{self.path.name}.writer")
        try:
            self._writer = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise AuditError(f"audit log {self.path}: cannot open it for appending: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(self._writer, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._writer)
            self._writer = None
            taken = exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
            raise AuditError(
                f"audit log {self.path}: another run is appending to it (it holds {lock.name}); one writer at a "
                "time: give this run its own audit=<file>, or wait for the other to stop"
                if taken
                else f"audit log {self.path}: cannot lock {lock.name}: {exc.strerror or exc}"
            ) from exc

    def _create_or_check(self, db: sqlite3.Connection) -> None:
        """Make the tables of a new (empty) database, or check that an existing one is an audit log."""
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == FORMAT:
            return
        if not _new(db):
            raise AuditError(f"audit log {self.path}: not an audit log of format {FORMAT} (user_version {version})")
        for statement in _SCHEMA:
            db.execute(statement)

    def append(self, record: AuditRecord) -> float:
        """Append one record in its own transaction; it is committed (durable against a kill) on return.

        Returns:
            The time this call took, ms.

        Raises:
            AuditError: the log is closed, the record is not the run's next step (0, 1, 2, ...),
                breaks a constraint (an unknown mode or verdict) or the database refuses the write.
        """
        start = time.perf_counter()
        if self._db is None:
            raise AuditError(f"audit log {self.path}: closed, step {record.step} not appended")
        if record.step != self._next_step:
            raise AuditError(f"audit log {self.path}: step {record.step} not appended: step {self._next_step} is next")
        try:
            row = _stored(_KINDS, _row(self.run, record))
            chain = _link(self.head, row)
            self._db.execute(_INSERT, (*row, chain))
        except (sqlite3.Error, ValueError, OverflowError) as exc:  # a value SQLite cannot hold, too
            raise AuditError(f"audit log {self.path}: step {record.step} not appended: {exc}") from exc
        self.head, self._next_step = chain, self._next_step + 1
        return (time.perf_counter() - start) * 1e3

    def checkpoint(self) -> None:
        """Move the write-ahead log into the database (call it between control steps, off the hot path).

        Appends never checkpoint on their own, so that no step pays for one; an append-only log that
        is never checkpointed still loses nothing, its WAL file only grows.
        """
        if self._db is not None:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        """Close the database (the WAL is checkpointed into it), then give up the writer lock; twice is harmless."""
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._writer is not None:
            os.close(self._writer)  # releases the flock
            self._writer = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    @staticmethod
    def read(path: str | Path) -> tuple[list[dict[str, Any]], list[AuditRecord]]:
        """Every run's meta, in order, and every record, in the order appended.

        Raises:
            AuditError: the file is missing, not an audit log, or holds a record that cannot be decoded.
        """
        runs = read_runs(path)
        return [r.meta for r in runs], [rec for r in runs for rec in r.records]


def free_mb(folder: str | Path) -> float:
    """Room left on the file system that holds `folder`, MB (1e6 bytes)."""
    return shutil.disk_usage(folder).free / 1e6


def short_of_room(path: str | Path, min_free_mb: float) -> str | None:
    """Why the disk of audit log `path` is short of its reserve (`min_free_mb`, 0: none kept), else None."""
    if min_free_mb > 0 and (free := free_mb(Path(path).parent)) < min_free_mb:
        return f"audit log {path}: {free:.1f} MB free on its disk, under audit_min_free_mb={min_free_mb:g}"
    return None


def read_runs(path: str | Path) -> list[AuditRun]:
    """The runs of an audit log, in order, each with its records; read-only, safe beside a live writer.

    A database its writer is still creating (no tables yet, as `AuditLog` finds a new file) holds no
    runs: a reader polling a deployment's log from its first instant sees an empty list.

    Raises:
        AuditError: the file is missing (or a folder), not an audit log, holds a record that cannot be
            decoded, or a run or record that breaks the hash chain (changed, added or removed past the triggers).
    """
    path = Path(path)
    if not path.is_file():
        raise AuditError(f"audit log {path}: {'a folder, not a file' if path.is_dir() else 'no such file'}")
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise AuditError(f"audit log {path}: cannot open it: {exc}") from exc
    try:
        db.execute("BEGIN")  # one snapshot for both tables: a writer's new run between them is not half seen
        if _new(db):
            return []
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version != FORMAT:
            raise AuditError(f"audit log {path}: not an audit log of format {FORMAT} (user_version {version})")
        run_rows = db.execute("SELECT run, opened_at_s, meta, chain FROM runs ORDER BY run").fetchall()
        db.row_factory = sqlite3.Row
        steps: dict[int, list[sqlite3.Row]] = {}
        for row in db.execute(_SELECT):
            steps.setdefault(row["run"], []).append(row)
        return _chained(path, run_rows, steps)
    except sqlite3.Error as exc:
        raise AuditError(f"audit log {path}: not a readable audit log: {exc}") from exc
    except (ValueError, TypeError) as exc:  # JSON that does not decode, a value of a type no record holds
        raise AuditError(f"audit log {path}: a record does not decode: {exc}") from exc
    finally:
        db.close()


def _chained(path: Path, run_rows: list[tuple[Any, ...]], steps: dict[int, list[sqlite3.Row]]) -> list[AuditRun]:
    """The runs with their records, each link of the hash chain checked in the order it was made."""
    runs: list[AuditRun] = []
    head = ""  # the chain runs through the runs in order, each on from the last one's last link
    for number, opened, meta, chain in run_rows:
        if number != len(runs) + 1 or chain != _link(head, (number, opened, meta)):
            raise AuditError(f"audit log {path}: run {number} does not match the log's hash chain: {_ALTERED}")
        run = AuditRun(number, opened, json.loads(meta), [], chain)
        for row in steps.pop(number, []):
            if row["step"] != len(run.records) or row["chain"] != _link(run.head, tuple(row)[:-1]):
                raise AuditError(
                    f"audit log {path}: run {number}, step {row['step']} (record {len(run.records)} of the run) "
                    f"does not match the log's hash chain: {_ALTERED}"
                )
            run.records.append(_record(path, row))
            run.head = row["chain"]
        runs.append(run)
        head = run.head
    if steps:
        raise AuditError(f"audit log {path}: steps of run {min(steps)}, no such run: {_ALTERED}")
    return runs


_ALTERED = "a record was changed, added or removed after it was written"


def _stored(kinds: tuple[str, ...], values: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row's values in the form SQLite gives them back: what is written, and hashed, is what is read.

    REAL: a Python float, NaN as NULL (SQLite's own), -0.0 as 0.0 (SQLite keeps no sign of zero);
    INTEGER: a Python int (a bool as 0 or 1; a numpy scalar would go in as a BLOB); TEXT as given.
    """
    out: list[Any] = []
    for kind, v in zip(kinds, values, strict=True):
        if v is None or kind == "TEXT":
            out.append(v)
        elif kind == "INTEGER":
            if int(v) != v:
                raise ValueError(f"{v!r} is not a whole number")
            out.append(int(v))
        else:
            x = float(v) + 0.0
            out.append(None if math.isnan(x) else x)
    return tuple(out)


def _log_head(path: Path, db: sqlite3.Connection, run: int | None) -> str:
    """The last link of the log (of run `run`'s last record, or of its row before any; "" for no run), checked.

    Only the tail is checked, in constant time: run `run`'s row against the last link of the run
    before it, and its last record against the link before that. It finds what two writers at once
    left (the later run's row chained on the other's opening, not on its last record) and an edit at
    the very end; not a break further back, which reading finds. The whole chain took 4 s to check
    on a log of 100,000 records, at every start and growing with the log.

    Raises:
        AuditError: the tail breaks the hash chain, naming the run (and the step).
    """
    if run is None:
        return ""
    row = db.execute("SELECT run, opened_at_s, meta, chain FROM runs WHERE run = ?", (run,)).fetchone()
    before = _run_end(db, run - 1) if run > 1 else ""
    if row is None or before is None or row[3] != _link(before, tuple(row[:3])):
        raise _broken(path, f"run {run}")
    last = [tuple(r) for r in db.execute(f"{_SELECT_RUN} ORDER BY id DESC LIMIT 2", (run,))]
    if not last:
        return str(row[3])
    step, link = (0, row[3]) if len(last) == 1 else (last[1][1] + 1, last[1][-1])
    if last[0][1] != step or last[0][-1] != _link(link, last[0][:-1]):
        raise _broken(path, f"run {run}, step {last[0][1]}")
    return str(last[0][-1])


def _broken(path: Path, where: str) -> AuditError:
    """The error of a log whose chain breaks at `where`: a run appended to it could not be reported."""
    return AuditError(
        f"audit log {path}: {where} does not match the log's hash chain ({_ALTERED}, or two runs wrote the log at "
        "once); a run appended to it could not be reported: start a new log (audit=<file>)"
    )


def _run_end(db: sqlite3.Connection, run: int) -> str | None:
    """The last link of run `run`: of its last record, or of its row before any (None: no such run)."""
    last = db.execute("SELECT chain FROM steps WHERE run = ? ORDER BY id DESC LIMIT 1", (run,)).fetchone()
    last = last or db.execute("SELECT chain FROM runs WHERE run = ?", (run,)).fetchone()
    return None if last is None else str(last[0])


def _link(previous: str, stored: tuple[Any, ...]) -> str:
    """The next link of the hash chain: SHA-256 (hex) of `previous` and a row as stored (types and all)."""
    text = json.dumps(stored, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(f"{previous}\n{text}".encode()).hexdigest()


def _new(db: sqlite3.Connection) -> bool:
    """Whether `db` is an empty database with no format yet: a new file, or a log not yet created."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    return version == 0 and not db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]


def _row(run: int, r: AuditRecord) -> tuple[Any, ...]:
    """The `steps` row of a record, in `_INSERT`'s order."""
    return (
        run,
        r.step,
        r.wall_time_s,
        r.mode,
        r.line_time_s,
        r.frame_seq,
        _json(r.values),
        _json(r.stamps),
        _json(r.status),
        _json(r.active),
        _json(r.kpis),
        _json(r.observation),
        _json(r.proposed),
        r.verdict,
        json.dumps(list(r.reasons)),
        _json(r.written),
        r.echo,
        bool(r.ood),
        _json(r.latency_ms),
        r.artifact_sha256,
        r.error,
    )


def _record(path: Path, row: sqlite3.Row) -> AuditRecord:
    """The record of a `steps` row, arrays and mappings decoded."""
    arrays = {name: _array(row[name]) for name in ("values", "stamps", "observation", "proposed")}
    frame = {name: a for name, a in arrays.items() if a is not None}
    if len(frame) < len(arrays):
        raise AuditError(f"audit log {path}: step {row['step']} lacks a frame, observation or proposal")
    line_time = row["line_time_s"]
    return AuditRecord(
        step=row["step"],
        wall_time_s=row["wall_time_s"],
        mode=row["mode"],
        line_time_s=math.nan if line_time is None else line_time,  # SQLite stores a NaN REAL as NULL
        frame_seq=row["frame_seq"],
        values=frame["values"],
        stamps=frame["stamps"],
        status=_mapping(row["status"]),
        active=_array(row["active"]),
        kpis=_mapping(row["kpis"]),
        observation=frame["observation"],
        proposed=frame["proposed"],
        verdict=row["verdict"],
        reasons=tuple(json.loads(row["reasons"])),
        written=_array(row["written"]),
        echo=row["echo"],
        ood=bool(row["ood"]),
        latency_ms=_mapping(row["latency_ms"]),
        artifact_sha256=row["artifact_sha256"],
        error=row["error"],
    )


def _json(value: Any) -> str | None:
    """Standard JSON text of plain data, arrays and numpy scalars (non-finite numbers as described above)."""
    if value is None:
        return None
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"), default=_plain)
    except ValueError:  # a non-finite number somewhere: rare, so the walk is only paid for then
        return json.dumps(_finite(value), allow_nan=False, separators=(",", ":"), default=_plain)


def _plain(value: Any) -> Any:
    """JSON's `default`: numpy arrays and scalars, enums and paths as plain data."""
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"a {type(value).__name__} ({value!r}) cannot go into the audit log as JSON")


def _finite(value: Any) -> Any:
    """`value` with every non-finite float replaced by None (NaN) or "Infinity" / "-Infinity"."""
    if isinstance(value, np.ndarray | np.generic):
        value = value.tolist()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return _INF if value > 0 else _NEG_INF
        return value
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _array(text: str | None) -> np.ndarray | None:
    """A float array from its JSON text (null: NaN; "Infinity", "-Infinity": infinities), None for NULL."""
    if text is None:
        return None
    return np.array(json.loads(text), dtype=float)


def _mapping(text: str) -> dict[str, Any]:
    """A mapping from its JSON text, "Infinity" and "-Infinity" back as floats."""
    return {k: float(v) if v in (_INF, _NEG_INF) else v for k, v in json.loads(text).items()}
