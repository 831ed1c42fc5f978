"""Benchmark the decision loop of a guarded deployment over Modbus on loopback: p50, p99, max per stage.

`experiments.deploy` in guarded mode, armed, with `guard=plant`, against a virtual PLC of the
default line that runs in a process of its own (`python -m experiments.plc serve`), free-running
at time factor 1 (a write does not simulate a control period inside the PLC), over plain Modbus
TCP and over mutual TLS. Each control step is deploy's own step function: read a frame, observe,
infer (onnxruntime), ask the guard, write what it lets out and wait for the PLC's echo, append the
audit record. Between steps the loop does not wait for the next control tick, only (untimed) for
the PLC's next frame, since deploy decides only on data newer than its last decision (the free
PLC publishes one every `PUBLISH_S`): what is measured is the decision latency of one step, not the
control period.

The figures are deploy's own per-stage latencies from the audit log (`AuditRecord.latency_ms`; a
step's `log` is the append of the record before it, as deploy accounts it), after untimed
warm-up steps; `step call` is the whole step function timed from outside (its own append, the
record built, the tally). Without `--artifact` a fresh untrained artifact is built, with the
network `python -m experiments.train experiment=speed` exports: an untrained actor costs as much to
run as a trained one of the same size. The audit logs and certificates go to a temporary folder.

    python -m experiments.bench_deploy                    # 2,000 steps per transport, an untrained artifact
    python -m experiments.bench_deploy --artifact outputs/train/Speed/<run>/artifact --steps 5000
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import onnxruntime
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from agents.artifact import PolicyArtifact
from envs.registration import TASKS
from experiments.bench_modbus import PLAIN, TLS, machine, plc_process
from experiments.control_loop import CHECKPOINT_EVERY, Tally, control_step
from experiments.deploy import compose_config, setup
from experiments.shadow_evidence import FAULTED, verdict_of
from experiments.tables import markdown_table
from hardware.audit import AuditRecord, read_runs
from hardware.modbus import make_certs

GOAL_P99_MS = 5.0  # ceiling on the p99 decision latency of one control step, both transports, default line
LINE = "flow5"
TASK = "Speed"
GUARD = "plant"
PUBLISH_S = 0.1  # wall seconds between the free PLC's frames (its default): at most one decision each
STAGES = ("read", "observe", "infer", "guard", "write", "log")  # deploy's stages, in the order of a step
TOTAL = "total"  # deploy's decision latency: read to write, plus the append of the record before
OTHER = "other"  # the total less its stages: decoding the action into a command, between the stages
CALL = "step call"  # deploy's step function timed from outside, its own append and record included
ROWS = (*STAGES, OTHER, TOTAL, CALL)
ARTIFACT_OVERRIDES = ("task=speed", f"line={LINE}", "seed=0")
_NEW_FRAME_S = 1e-3  # the PLC timestamp's resolution: `advance` by it returns the next frame the PLC publishes


@dataclass(frozen=True)
class StageLatency:
    """Latency of one stage of the decision loop over every timed step, ms."""

    stage: str
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, stage: str, samples_ms: Sequence[float]) -> StageLatency:
        """The figures of `samples_ms`, one duration per step, ms."""
        ms = np.asarray(samples_ms, dtype=float)
        p50, p99 = np.percentile(ms, [50, 99])
        return cls(stage, float(p50), float(p99), float(ms.max()))


@dataclass(frozen=True)
class LoopResult:
    """The decision loop over one transport: its stages, verdicts and faults over the timed steps."""

    transport: str
    steps: int  # timed steps that met no fault (the latencies are theirs)
    faults: int  # timed steps that met a fault (deploy waits `retry_s` after each: not timed here)
    verdicts: Mapping[str, int]  # verdicts of the timed steps: pass, clip, block (and `FAULTED`, if any)
    interventions: Mapping[str, int]  # timed steps by kind of the guard's reasons (gate, clamp, rate, deadband, ...)
    written: int  # timed steps that wrote a command block and checked its echo (the others: a heartbeat)
    keep_blocks: int  # of those, blocks whose every setpoint is NaN (keep): the guard let no change out
    stages: tuple[StageLatency, ...]  # in ROWS order

    def stage(self, name: str) -> StageLatency:
        """The figures of stage `name` (one of ROWS)."""
        return next(s for s in self.stages if s.stage == name)

    def share(self, name: str) -> float:
        """Stage `name`'s median as a fraction of the total's median."""
        return self.stage(name).p50_ms / self.stage(TOTAL).p50_ms

    @property
    def goal_met(self) -> bool:
        """Whether the total's p99 is under the goal."""
        return self.stage(TOTAL).p99_ms < GOAL_P99_MS


@dataclass(frozen=True)
class Results:
    """Everything one run measured."""

    artifact: str  # what ran: a description of the artifact
    warmup: int  # untimed steps before the timed ones, per transport
    loops: tuple[LoopResult, ...]  # plain Modbus TCP, then mutual TLS

    @property
    def goal_met(self) -> bool:
        """Whether every transport keeps the total's p99 under the goal."""
        return all(r.goal_met for r in self.loops)


def untrained_artifact(
    folder: str | Path,
    overrides: Sequence[str] = ARTIFACT_OVERRIDES,
    warmup_steps: int = 120,
    action_offset: Sequence[float] | None = None,
) -> Path:
    """Export an untrained PPO policy, built as `experiments.train` builds its agent, into `folder`.

    The train config is composed with `overrides` (by default task Speed on flow5 with the `ppo`
    agent group: the network of `experiment=speed`, net_arch [64, 64]); the agent is made by
    `experiments.build.make_agent` behind the training envs' `VecNormalize`, whose observation
    statistics come from `warmup_steps` steps of random actions (the action space sampled, seeded
    by the config's seed). The manifest holds the composed config, so `experiments.deploy` finds
    the line and the task in it, and the statistics feed the guard's out-of-distribution gate.
    `action_offset` is added to the actor's output (in the action space's units, before clipping):
    proposals away from where an untrained actor sits, for tests of what a guard does with them.

    Returns:
        The artifact's folder.
    """
    # Only building needs torch and stable-baselines3: a deployment, and this benchmark given an artifact, runs without.
    from stable_baselines3.common.vec_env import VecNormalize

    from agents.export import export_policy
    from experiments.build import make_agent, make_vec_env

    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides))
    venv = make_vec_env(cfg)
    try:
        venv.reset()
        space = venv.action_space
        space.seed(int(cfg.seed))
        for _ in range(warmup_steps):
            venv.step(np.stack([space.sample() for _ in range(venv.num_envs)]))
        model = make_agent(cfg, venv, None)
        if action_offset is not None:
            import torch

            head = cast(torch.nn.Linear, model.policy.action_net)  # PPO's actor head on a Box action space
            with torch.no_grad():
                head.bias.add_(torch.as_tensor(action_offset, dtype=torch.float32))
        return export_policy(
            model,
            folder,
            vec_normalize=venv if isinstance(venv, VecNormalize) else None,
            config=OmegaConf.to_container(cfg, resolve=True),  # type: ignore[arg-type]
            metadata={"task": cfg.task.name, "task_id": cfg.task.id},
        )
    finally:
        venv.close()


def describe(artifact: Path) -> str:
    """The artifact's algorithm, network, spaces and hash, in one line."""
    loaded = PolicyArtifact.load(artifact)
    manifest = loaded.manifest
    net_arch = OmegaConf.select(OmegaConf.create(manifest.get("config") or {}), "agent.policy_kwargs.net_arch")
    return (
        f"{artifact}: {manifest.get('algorithm', '?')} actor, net_arch {net_arch}, "
        f"{loaded.observation_space.shape[0]} observations -> {loaded.action_space.shape} actions, "
        f"sha256 {str(manifest['sha256'])[:12]}"
    )


def decision_loop(
    artifact: Path, port: int, audit: Path, transport: str, steps: int, warmup: int, tls: Mapping[str, str] | None
) -> LoopResult:
    """Run `warmup` + `steps` of deploy's guarded, armed control steps on the PLC at `port`, one a new frame.

    Only the steps are timed, not the waits for the PLC's next frame between them.

    Args:
        artifact: the policy artifact's folder.
        port: the virtual PLC's port on 127.0.0.1.
        audit: the audit log to write (a new file).
        transport: the transport's name, for the result.
        steps: timed steps.
        warmup: untimed steps before them.
        tls: the client's `cert`, `key` and `ca` for mutual TLS; None for plain Modbus TCP.

    Raises:
        ConfigError: the artifact or the configuration does not fit the line (from `setup`).
    """
    overrides = [
        f"artifact={artifact}",
        "mode=guarded",
        "arm=true",
        f"guard={GUARD}",
        "~guard.deadband",  # every step writes a block and checks its echo, as the issue times it
        f"hardware.port={port}",
        f"audit={audit}",
        "status_every_s=0",
    ]
    if tls is not None:
        overrides.append("hardware.tls={" + ",".join(f"{k}:'{v}'" for k, v in tls.items()) + "}")
    dep = setup(compose_config(overrides))
    calls_ms = []
    try:
        tally = Tally()
        frame = dep.view.reset()
        log_ms = 0.0
        for i in range(warmup + steps):
            start = time.perf_counter_ns()
            frame, log_ms = control_step(dep, frame, tally, log_ms)
            if i >= warmup:
                calls_ms.append((time.perf_counter_ns() - start) / 1e6)
            if i % CHECKPOINT_EVERY == 0:
                dep.audit.checkpoint()  # between steps, as deploy does while it waits for the tick
            frame = dep.view.advance(_NEW_FRAME_S)
    finally:
        dep.audit.close()
        dep.view.close()
    (run,) = read_runs(audit)
    timed = run.records[warmup:]
    return summarise(transport, timed, calls_ms)


def summarise(transport: str, records: Sequence[AuditRecord], calls_ms: Sequence[float]) -> LoopResult:
    """The figures of the timed steps' audit records and of their step calls timed from outside, in step order.

    The latencies are those of the steps that met no fault (deploy waits `retry_s` after a step that meets one).

    Raises:
        RuntimeError: every timed step met a fault; the message gives the first.
    """
    clean = [r for r in records if r.error is None]
    if not clean:
        raise RuntimeError(f"{transport}: every timed step met a fault, the first: {records[0].error}")
    # a run's first record has no `log` stage (no append before it): it is left out of that stage only
    per_stage = {name: [r.latency_ms[name] for r in clean if name in r.latency_ms] for name in (*STAGES, TOTAL)}
    per_stage[OTHER] = [r.latency_ms[TOTAL] - sum(r.latency_ms.get(s, 0.0) for s in STAGES) for r in clean]
    per_stage[CALL] = [ms for ms, r in zip(calls_ms, records, strict=True) if r.error is None]
    verdicts = Counter(verdict_of(r) for r in records)
    kinds = Counter(kind for r in records for kind in {reason.split(":", 1)[0] for reason in r.reasons})
    written = [r.written for r in records if r.written is not None]
    return LoopResult(
        transport=transport,
        steps=len(clean),
        faults=len(records) - len(clean),
        verdicts={k: verdicts[k] for k in ("pass", "clip", "block", FAULTED) if verdicts[k] or k != FAULTED},
        interventions=dict(kinds.most_common()),
        written=len(written),
        keep_blocks=sum(bool(np.isnan(w).all()) for w in written),
        stages=tuple(StageLatency.of(name, per_stage[name]) for name in ROWS),
    )


def measure(artifact: Path, steps: int, warmup: int) -> Results:
    """The decision loop over plain Modbus TCP, then over mutual TLS, one PLC process at a time."""
    task_cls, _, period, _ = TASKS[TASK]
    levers = ",".join(sorted(lv.value for lv in task_cls.levers))
    # warm: the state the training envs start in, where the artifact's statistics come from (the OOD gate stays open)
    free = (
        f"line={LINE}",
        f"levers=[{levers}]",
        f"control_period_s={period}",
        "mode=free",
        "time_factor=1",
        f"publish_s={PUBLISH_S}",
        "+line.start.mode=warm",
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with plc_process(*free) as port:
            plain = decision_loop(artifact, port, folder / "plain.sqlite", PLAIN, steps, warmup, None)
        certs = make_certs(folder / "certs")
        s, c = certs.server, certs.client
        with plc_process(*free, f"tls.cert={s.cert}", f"tls.key={s.key}", f"tls.ca={s.ca}") as port:
            files = {"cert": str(c.cert), "key": str(c.key), "ca": str(c.ca)}
            tls = decision_loop(artifact, port, folder / "tls.sqlite", TLS, steps, warmup, files)
    return Results(describe(artifact), warmup, (plain, tls))


def versions() -> str:
    """The machine and the versions the loop runs on, in one line."""
    return (
        f"{machine()}, onnxruntime {onnxruntime.__version__}, numpy {np.__version__}, SQLite {sqlite3.sqlite_version}"
    )


def report(results: Results) -> str:
    """The figures as Markdown tables, one per transport, with the verdict against the goal."""
    lines = [
        f"machine: {versions()}",
        f"artifact: {results.artifact}",
        f"experiments.deploy mode=guarded arm=true guard={GUARD} against a virtual PLC of {LINE} in its own process "
        "on 127.0.0.1, free-running at time factor 1",
        "no wait for the next control tick between steps, only an untimed one for the PLC's next frame (published "
        f"every {PUBLISH_S:g} s; deploy decides only on new data): the decision latency of a step, not the control "
        f"period; {results.warmup} untimed warm-up steps per transport",
        f"stages as deploy records them in the audit log; {OTHER}: {TOTAL} less its stages; {CALL}: the whole "
        "step function timed from outside (its own append and record included)",
    ]
    for r in results.loops:
        table = markdown_table(
            ["stage", "p50 ms", "p99 ms", "max ms", "share of total p50"],
            [
                [s.stage, f"{s.p50_ms:.3f}", f"{s.p99_ms:.3f}", f"{s.max_ms:.3f}", f"{r.share(s.stage):.0%}"]
                for s in r.stages
            ],
        )
        verdicts = ", ".join(f"{k} {v:,}" for k, v in r.verdicts.items())
        reasons = ", ".join(f"{k} {v:,}" for k, v in r.interventions.items()) or "none"
        lines += [
            "",
            f"{r.transport}: {r.steps:,} steps without a fault, {r.faults} with one; guard verdicts {verdicts} "
            f"(steps by reason: {reasons}); {r.written:,} command blocks written and echoed, {r.keep_blocks:,} of "
            "them all keep (NaN)",
            "",
            table,
        ]
    lines.append("")
    lines += [
        f"decision latency p99 ({TOTAL}), {r.transport}: {r.stage(TOTAL).p99_ms:.3f} ms "
        f"(goal < {GOAL_P99_MS:g} ms: {'met' if r.goal_met else 'NOT met'})"
        for r in results.loops
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> Results:
    """Parse the options, run the benchmark, print its tables and return its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="timed control steps per transport")
    parser.add_argument("--warmup", type=int, default=100, help="untimed control steps before them")
    parser.add_argument("--artifact", type=Path, help="a policy artifact folder; default: a fresh untrained one")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1, --warmup >= 0")
    if args.artifact is not None:
        return _run(args.artifact, args.steps, args.warmup)
    with tempfile.TemporaryDirectory() as tmp:
        return _run(untrained_artifact(Path(tmp) / "artifact"), args.steps, args.warmup)


def _run(artifact: Path, steps: int, warmup: int) -> Results:
    results = measure(artifact, steps, warmup)
    print(report(results))
    return results


if __name__ == "__main__":
    main()
