"""Benchmark the Modbus layer on loopback: full-frame reads, command writes, env steps over the fieldbus.

A virtual PLC serves the default line from a process of its own (`python -m experiments.plc
serve`), and `ModbusLine`, a sync pymodbus client, talks to it over 127.0.0.1:

1. frame read: `ModbusLine.read()`, every request of the map's read plan, decoded and checked;
2. command write: `ModbusLine.write()` of one command block, alternating two speed setpoints, up
   to the PLC's echo of its sequence number;
   both against a free-running PLC at time factor 1 (a write does not step the line), over plain
   Modbus TCP and over mutual TLS;
3. env steps: the Speed env on a lockstep PLC over Modbus TCP, against the same env on the twin
   directly, the nominal_speed heuristic acting (its `predict` and the resets are not timed).

Each figure follows untimed warm-up calls and times every call with `time.perf_counter_ns`.

    python -m experiments.bench_modbus                          # 2,000 reads, writes and steps each
    python -m experiments.bench_modbus --requests 500 --steps 500
"""

from __future__ import annotations

import argparse
import os
import platform
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import gymnasium as gym
import numpy as np
import pymodbus
import yaml

from agents.baselines import make_baseline
from configs import config_file
from envs.registration import TASKS
from experiments.tables import markdown_table
from hardware.interface import Command
from hardware.modbus import InputImage, make_certs
from hardware.modbus.client import ModbusLine
from hardware.modbus.connect import modbus_line

GOAL_READ_P99_MS = 2.0  # ceiling on the p99 latency of one full-frame read, both transports, default line
LINE = "flow5"
TASK = "Speed"
POLICY = "nominal_speed"
SPEEDS = (0.9, 1.1)  # speed ratios the writes alternate between, valid at every station of the line
PLAIN, TLS = "Modbus TCP", "mutual TLS"
ROOT = Path(__file__).resolve().parents[1]
_BANNER = re.compile(r"^virtual PLC of line .* on 127\.0\.0\.1:(\d+),")
_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Latency:
    """Latency of one kind of call over one transport, from every timed call."""

    operation: str
    transport: str
    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, operation: str, transport: str, samples_ns: Sequence[int]) -> Latency:
        """The figures of `samples_ns`, one duration per call, ns."""
        ms = np.asarray(samples_ns, dtype=float) / 1e6
        p50, p99 = np.percentile(ms, [50, 99])
        return cls(operation, transport, len(ms), float(p50), float(p99), float(ms.max()))


@dataclass(frozen=True)
class StepRate:
    """Env steps on one kind of line: their number, total time and per-step latency."""

    line: str
    steps: int
    wall_s: float  # sum of the timed `env.step` calls
    latency: Latency

    @property
    def steps_per_s(self) -> float:
        """Env steps per wall-second of stepping."""
        return self.steps / self.wall_s


@dataclass(frozen=True)
class Results:
    """Everything one run measured."""

    requests_per_frame: int
    registers_per_frame: int
    latencies: tuple[Latency, ...]  # frame read and command write, each over both transports
    direct: StepRate
    modbus: StepRate

    def latency(self, operation: str, transport: str) -> Latency:
        """The row of `operation` over `transport`."""
        return next(r for r in self.latencies if r.operation == operation and r.transport == transport)

    @property
    def read_p99_ms(self) -> float:
        """The worse full-frame read p99 of the two transports, ms."""
        return max(self.latency("frame read", t).p99_ms for t in (PLAIN, TLS))

    @property
    def goal_met(self) -> bool:
        """Whether every transport reads a full frame with a p99 under the goal."""
        return self.read_p99_ms < GOAL_READ_P99_MS

    @property
    def direct_over_modbus(self) -> float:
        """Env steps per second on the twin directly over those through the lockstep PLC."""
        return self.direct.steps_per_s / self.modbus.steps_per_s


@contextmanager
def plc_process(*overrides: str) -> Iterator[int]:
    """Serve a virtual PLC (`experiments.plc serve`, a free port) in a process of its own; yield its port.

    On exit it is told to `quit` and waited for, and killed if it does not end in time.

    Raises:
        RuntimeError: the PLC ended or printed no banner within the start timeout; the message
            carries its stderr.
    """
    with tempfile.TemporaryFile("w+") as err:
        command = [sys.executable, "-m", "experiments.plc", "serve", "port=0", *overrides]
        proc = subprocess.Popen(  # noqa: S603  (our own interpreter and module)
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            cwd=ROOT,
        )
        try:
            yield _port(proc, err, " ".join(command))
        finally:
            _stop(proc)


def _port(proc: subprocess.Popen[str], err: IO[str], command: str) -> int:
    """The port in the PLC's banner; stdout is drained by a thread from then on, so the PLC never blocks on it."""
    lines: queue.Queue[str | None] = queue.Queue()

    def drain(out: IO[str]) -> None:
        for line in out:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=drain, args=(proc.stdout,), daemon=True).start()
    deadline = time.monotonic() + _START_TIMEOUT_S
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        found = _BANNER.match(line)
        if found:
            return int(found.group(1))
    err.seek(0)
    raise RuntimeError(f"the virtual PLC ({command}) did not start:\n{err.read()[-2000:]}")


def _stop(proc: subprocess.Popen[str]) -> None:
    """Type `quit` into the PLC and wait for it; kill it if it does not end within the stop timeout."""
    stdin = proc.stdin
    if stdin is not None:
        try:
            stdin.write("quit\n")
            stdin.close()
        except BrokenPipeError:  # it has ended already
            pass
    try:
        proc.wait(_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def line_definition() -> dict[str, Any]:
    """The default line's definition, as the Hydra `line` group holds it."""
    definition: dict[str, Any] = yaml.safe_load(config_file("line", LINE).read_text())
    return definition


def client(port: int, tls: Mapping[str, str] | None = None) -> ModbusLine:
    """A `ModbusLine` for the Speed task on the PLC at `port`, not attached yet."""
    task_cls, _, period, _ = TASKS[TASK]
    return modbus_line(line_definition(), task_cls.levers, period, port=port, tls=tls, timeout_s=2.0)


def time_calls(call: Callable[[int], object], count: int, warmup: int) -> list[int]:
    """Durations of `count` calls `call(i)`, ns, after `warmup` untimed ones (`i` counts them all)."""
    for i in range(warmup):
        call(i)
    samples = []
    for i in range(warmup, warmup + count):
        start = time.perf_counter_ns()
        call(i)
        samples.append(time.perf_counter_ns() - start)
    return samples


def reads_and_writes(line: ModbusLine, transport: str, count: int, warmup: int) -> tuple[Latency, Latency]:
    """Attach `line`, then time full-frame reads and command writes with their echo."""
    try:
        line.reset()
        reads = time_calls(lambda _: line.read(), count, warmup)
        n = len(line.spec.actuators)
        commands = [Command(setpoints=np.full(n, speed)) for speed in SPEEDS]
        writes = time_calls(lambda i: line.write(commands[i % 2]), count, warmup)
    finally:
        line.close()
    return Latency.of("frame read", transport, reads), Latency.of("command write + echo", transport, writes)


def env_steps(name: str, env: gym.Env[Any, Any], steps: int, warmup: int) -> StepRate:
    """Time `steps` steps of `env` under the heuristic, after `warmup` untimed ones; resets at episode ends.

    Only `env.step` is timed: the policy and the resets (a twin's warm-up, a `ModbusLine`'s attach) are not.
    """
    limit = TASKS[TASK][3]
    policy = make_baseline(env, POLICY)
    episode, in_episode = 0, 0
    obs, _ = env.reset(seed=episode)
    samples = []
    try:
        for i in range(warmup + steps):
            if in_episode == limit:
                episode, in_episode = episode + 1, 0
                obs, _ = env.reset(seed=episode)
            action = policy.predict(obs, deterministic=True)[0]
            start = time.perf_counter_ns()
            obs, *_ = env.step(action)
            elapsed = time.perf_counter_ns() - start
            in_episode += 1
            if i >= warmup:
                samples.append(elapsed)
    finally:
        env.close()
    return StepRate(name, steps, sum(samples) / 1e9, Latency.of("env step", name, samples))


def measure(requests: int, steps: int, warmup: int) -> Results:
    """Run the three benchmarks, one PLC process at a time (an idle PLC still scans and would compete for the CPUs)."""
    task_cls, _, period, _ = TASKS[TASK]
    levers = ",".join(sorted(lv.value for lv in task_cls.levers))
    serve = (f"line={LINE}", f"levers=[{levers}]", f"control_period_s={period}")
    free = (*serve, "mode=free", "time_factor=1")
    with plc_process(*free) as port:
        line = client(port)
        plan = InputImage(line.map, line.spec).plan
        latencies = [*reads_and_writes(line, PLAIN, requests, warmup)]
    with tempfile.TemporaryDirectory() as folder:
        certs = make_certs(folder)
        s, c = certs.server, certs.client
        with plc_process(*free, f"tls.cert={s.cert}", f"tls.key={s.key}", f"tls.ca={s.ca}") as port:
            files = {"cert": str(c.cert), "key": str(c.key), "ca": str(c.ca)}
            latencies.extend(reads_and_writes(client(port, files), TLS, requests, warmup))
    env_id = f"smartline/{TASK}-v0"
    direct = env_steps("TwinLine (direct)", gym.make(env_id).unwrapped, steps, warmup)
    with plc_process(*serve, "mode=lockstep", "+line.start.mode=warm") as port:  # warm, as the env's own twin
        modbus = env_steps(
            f"ModbusLine, lockstep PLC ({PLAIN})", gym.make(env_id, line=client(port)).unwrapped, steps, warmup
        )
    return Results(len(plan), sum(b.count for b in plan), tuple(latencies), direct, modbus)


def machine() -> str:
    """The platform, CPU model and count, Python and pymodbus versions, in one line."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        cpu = next(
            (ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")), cpu
        )
    return (
        f"{platform.platform()}, {cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"pymodbus {pymodbus.__version__}"
    )


def report(results: Results, warmup: int) -> str:
    """The figures as Markdown tables, the verdict against the goal and the direct/Modbus ratio."""
    r = results
    latency = markdown_table(
        ["operation", "transport", "calls", "p50 ms", "p99 ms", "max ms"],
        [
            [x.operation, x.transport, f"{x.count:,}", f"{x.p50_ms:.3f}", f"{x.p99_ms:.3f}", f"{x.max_ms:.3f}"]
            for x in r.latencies
        ],
        numeric=[False, False, True, True, True, True],
    )
    steps = markdown_table(
        ["line", "steps", "steps/s", "p50 ms", "p99 ms", "max ms"],
        [
            [
                s.line,
                f"{s.steps:,}",
                f"{s.steps_per_s:,.0f}",
                f"{s.latency.p50_ms:.3f}",
                f"{s.latency.p99_ms:.3f}",
                f"{s.latency.max_ms:.3f}",
            ]
            for s in (r.direct, r.modbus)
        ],
    )
    plain, tls = (r.latency("frame read", t).p99_ms for t in (PLAIN, TLS))
    verdict = "met" if r.goal_met else "NOT met"
    return "\n".join(
        [
            f"machine: {machine()}",
            f"virtual PLC of {LINE} in its own process on 127.0.0.1, sync pymodbus client, {warmup} warm-up calls each",
            f"a frame is {r.requests_per_frame} requests (FC4) of {r.registers_per_frame} input registers in all; "
            "a command write is one FC16 request, then reads until the PLC echoes its sequence number",
            "",
            f"Reads and writes against a free-running PLC (time factor 1), speed setpoints alternating {SPEEDS}",
            "",
            latency,
            "",
            f"{TASK} env on {LINE}, the {POLICY} heuristic; only env.step timed (not the policy or the resets)",
            "",
            steps,
            "",
            f"full-frame read p99: {plain:.3f} ms {PLAIN}, {tls:.3f} ms {TLS} "
            f"(goal < {GOAL_READ_P99_MS:g} ms on both: {verdict})",
            f"env steps/s, direct / Modbus: {r.direct_over_modbus:.1f}x",
        ]
    )


def main(argv: Sequence[str] | None = None) -> Results:
    """Parse the options, run the benchmark, print its tables and return its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="timed frame reads, and writes, per transport")
    parser.add_argument("--steps", type=int, default=2000, help="timed env steps per line")
    parser.add_argument("--warmup", type=int, default=100, help="untimed calls before each timed series")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.steps < 1 or args.warmup < 0:
        parser.error("--requests and --steps must be >= 1, --warmup >= 0")
    results = measure(args.requests, args.steps, args.warmup)
    print(report(results, args.warmup))
    return results


if __name__ == "__main__":
    main()
