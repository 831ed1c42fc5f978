"""`python -m experiments.bench_deploy` with tiny counts: a fresh artifact, two PLC processes, every figure there."""

from __future__ import annotations

import onnxruntime

from experiments.bench_deploy import CALL, GOAL_P99_MS, OTHER, ROWS, STAGES, TOTAL, main
from experiments.bench_modbus import PLAIN, TLS


def test_the_deploy_benchmark_times_every_stage_of_the_guarded_loop_over_both_transports(capsys):
    results = main(["--steps", "30", "--warmup", "3"])
    out = capsys.readouterr().out

    assert [r.transport for r in results.loops] == [PLAIN, TLS]
    assert results.warmup == 3
    assert "net_arch [64, 64]" in results.artifact  # the network experiment=speed trains
    for r in results.loops:
        assert r.steps + r.faults == 30
        assert r.faults == 0  # a healthy PLC on loopback
        assert sum(r.verdicts.values()) == 30
        assert r.written == 30 - r.verdicts["block"] >= r.keep_blocks
        assert [s.stage for s in r.stages] == list(ROWS)
        for s in r.stages:
            assert s.p50_ms <= s.p99_ms <= s.max_ms
            if s.stage != OTHER:  # the total less its stages may round below zero
                assert s.p50_ms >= 0
        total = r.stage(TOTAL)
        assert sum(r.stage(name).p50_ms for name in STAGES) <= total.max_ms
        assert r.stage("read").p50_ms > 0
        assert r.stage("write").p50_ms > 0
        assert r.share(TOTAL) == 1.0
        assert r.stage(CALL).p50_ms > 0
        assert r.goal_met == (total.p99_ms < GOAL_P99_MS)
        assert f"decision latency p99 ({TOTAL}), {r.transport}: {total.p99_ms:.3f} ms" in out
    assert results.goal_met == all(r.goal_met for r in results.loops)

    assert f"onnxruntime {onnxruntime.__version__}" in out
    assert "not the control period" in out
    for name in ROWS:
        assert f"| {name} | " in out
    assert out.count("| stage | p50 ms | p99 ms | max ms | share of total p50 |") == 2
