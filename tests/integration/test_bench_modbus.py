"""`python -m experiments.bench_modbus` with tiny counts: three PLC processes come and go, every figure is there."""

from __future__ import annotations

import pymodbus

from experiments.bench_modbus import GOAL_READ_P99_MS, PLAIN, TLS, main


def test_the_modbus_benchmark_measures_reads_writes_and_env_steps_over_both_transports(capsys):
    results = main(["--requests", "50", "--steps", "20", "--warmup", "5"])
    out = capsys.readouterr().out

    rows = {(r.operation, r.transport): r for r in results.latencies}
    assert set(rows) == {(op, t) for op in ("frame read", "command write + echo") for t in (PLAIN, TLS)}
    for r in results.latencies:
        assert r.count == 50
        assert 0 < r.p50_ms <= r.p99_ms <= r.max_ms
    frame = results.requests_per_frame, results.registers_per_frame
    assert 0 < frame[1] <= 125 * frame[0]  # FC4 reads at most 125 registers
    for rate in (results.direct, results.modbus):
        assert rate.steps == rate.latency.count == 20
        assert 0 < rate.latency.p50_ms <= rate.latency.p99_ms <= rate.latency.max_ms
        assert rate.steps_per_s > 0
    assert results.direct_over_modbus == results.direct.steps_per_s / results.modbus.steps_per_s
    assert results.read_p99_ms == max(rows["frame read", t].p99_ms for t in (PLAIN, TLS))
    assert results.goal_met == (results.read_p99_ms < GOAL_READ_P99_MS)

    assert "| frame read | Modbus TCP | 50 |" in out
    assert "| command write + echo | mutual TLS | 50 |" in out
    assert f"a frame is {frame[0]} requests (FC4) of {frame[1]} input registers" in out
    assert f"pymodbus {pymodbus.__version__}" in out
    assert f"(goal < {GOAL_READ_P99_MS:g} ms on both: {'met' if results.goal_met else 'NOT met'})" in out
