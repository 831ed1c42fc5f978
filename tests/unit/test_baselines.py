"""Heuristic baselines: each rule's choice against its definition, decoded commands, params, shapes."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import yaml

import envs  # noqa: F401  (registers the ids)
from agents.baselines import BASELINES, DispatchRule, Rule, configured_params, make_baseline
from agents.decoder import SensorDecoder
from agents.jssp_policy import RULES, rule_decode
from configs import CONFIG_DIR
from envs.base import LineEnv
from envs.energy import EnergyTask
from envs.factory import FactoryTask
from envs.jobshop import load_instance
from envs.jssp_batch import InstanceBatch
from envs.lines import resolve_line
from envs.registration import TASKS
from hardware import Command, Frame, JobSpec, Line, StationState

J = 9  # features per job in the Scheduling observation: waits, queued, active, done, ops, work, next op, slack, setup


def scheduling(**kwargs) -> gym.Env:
    env = gym.make("smartline/Scheduling-v0", **kwargs)
    env.reset(seed=0)
    return env


def crafted(env: gym.Env, waiting: list[int], column: int, values: dict[int, float]) -> np.ndarray:
    """A Scheduling observation with only `waiting` jobs flagged and one feature column set."""
    obs = np.zeros(env.observation_space.shape, dtype=np.float32)
    obs[[J * j for j in waiting]] = 1.0
    for j, v in values.items():
        obs[J * j + column] = v
    return obs


@pytest.mark.parametrize(
    ("rule", "column", "values", "expected"),
    [
        ("spt", 6, {1: 0.5, 2: 0.1, 3: 0.3, 4: 0.3}, 3),  # job 2 is shorter but does not wait here
        ("lpt", 6, {1: 0.5, 3: 0.9, 4: 0.9}, 3),  # tie between 3 and 4: the lower id
        ("mwkr", 5, {1: 0.7, 3: 0.2, 4: 0.6, 5: 0.95}, 1),
        ("mopnr", 4, {1: 0.2, 3: 0.8, 4: 0.4}, 3),
    ],
)
def test_rule_picks_the_best_waiting_job_on_a_crafted_observation(rule, column, values, expected):
    env = scheduling(instance="ft06")
    obs = crafted(env, [1, 3, 4], column, values)
    action, state = make_baseline(env, rule).predict(obs)
    assert int(action) == expected
    assert state is None


# 4 jobs whose due dates (5x their work: 725, 1070, 1040, 1075) lie more than the job set's total work
# (782) apart, where the observation's clipped slack lost their order
FAR_DUE = "4 4\n3 78 1 22 2 26 0 19\n3 46 2 95 0 39 1 34\n2 92 3 44 1 7 0 65\n1 76 3 44 2 94 0 1\n"


@pytest.mark.parametrize("factor", [1.5, 5.0, 100.0])
@pytest.mark.parametrize("instance", ["ft06", "far_due"])
def test_edd_takes_the_earliest_due_date_for_any_due_date_factor(tmp_path, instance, factor):
    if instance == "far_due":
        instance = str(tmp_path / "far_due.txt")
        (tmp_path / "far_due.txt").write_text(FAR_DUE)
    env = scheduling(instance=instance, due_date_factor=factor)
    base = env.unwrapped
    due = [job.due_s for job in base.line.spec.jobs]
    assert due == [factor * sum(job.times_s) for job in base.line.spec.jobs]
    edd = make_baseline(env, "edd")
    obs, _ = env.reset(seed=0)
    terminated, picks = False, []
    while not terminated:
        waiting = base.task.decision(base.frame).jobs
        action = int(edd.predict(obs)[0])
        assert action == min(waiting, key=lambda j: (due[j], j))
        picks.append((base.frame.time, tuple(waiting), action))
        obs, _, terminated, _, _ = env.step(action)
    if instance.endswith("far_due.txt") and factor == 5.0:
        assert (78.0, (1, 3), 1) in picks  # job 1 (due 1070) before job 3 (due 1075); the clipped slack chose 3


@pytest.mark.parametrize(
    ("rule", "column", "values", "expected"),
    [
        ("mwkr", 5, {1: 3e-7, 3: 5e-7}, 3),  # work left 3 and 5 next to a job of 1e7: not a tie
        ("lpt", 6, {1: 2e-7, 3: 4e-7}, 3),
        ("spt", 6, {1: 4e-7, 3: 2e-7}, 3),
        ("mwkr", 5, {1: 0.7, 3: float(np.nextafter(np.float32(0.7), np.float32(1)))}, 1),  # one rounding apart: a tie
    ],
)
def test_rule_keys_tie_relative_to_their_size(rule, column, values, expected):
    env = scheduling(instance="ft06")
    obs = crafted(env, [1, 3], column, values)
    assert int(make_baseline(env, rule).predict(obs)[0]) == expected


@pytest.mark.parametrize(
    "text",
    ["3 2\n1 10000000 0 1\n0 2 1 1\n0 4 1 1\n", "2 3\n0 3000000000 1 2 2 2\n0 2 2 1 1 4\n"],
    ids=["long_job", "big_time"],
)
@pytest.mark.parametrize("rule", list(RULES))
def test_env_rules_build_the_batch_builders_schedule_next_to_a_very_long_job(tmp_path, text, rule):
    path = tmp_path / "shop.txt"
    path.write_text(text)
    instance = load_instance(path)
    env = gym.make("smartline/Scheduling-v0", instance=str(path))
    base = env.unwrapped
    baseline = make_baseline(env, rule)
    starts = np.zeros((instance.n_jobs, instance.n_machines))
    obs, _ = env.reset(seed=0)
    terminated = False
    while not terminated:
        action = int(baseline.predict(obs)[0])
        starts[action, int(base.frame.jobs.step[action])] = base.frame.time
        obs, _, terminated, _, info = env.step(action)
    built = rule_decode(InstanceBatch.of([instance]), rule)
    np.testing.assert_array_equal(starts, built.starts[0])
    assert info["makespan"] == built.makespan[0]


def test_fifo_reads_the_queue_of_its_env_and_predicts_one_at_a_time():
    env = scheduling()
    base = env.unwrapped
    fifo = make_baseline(env, "fifo")
    obs, _ = env.reset(seed=0)
    while (jobs := base.task.decision(base.frame).jobs)[0] == min(jobs):
        obs, *_ = env.step(jobs[-1])  # the last in queue first, till a queue is out of id order
    assert int(fifo.predict(obs)[0]) == jobs[0]
    assert fifo.predict(obs[None])[0].tolist() == [jobs[0]]
    with pytest.raises(ValueError, match="FIFO"):
        fifo.predict(np.stack([obs, obs]))


def definition_key(rule: str, job: JobSpec, step: int, frame: Frame) -> float:
    """The rule's priority (lower first) computed from the job set's spec."""
    return {
        "spt": job.times_s[step],
        "lpt": -job.times_s[step],
        "mwkr": -sum(job.times_s[step:]),
        "mopnr": -(len(job.route) - step),
        "edd": job.due_s - frame.time,
    }[rule]


@pytest.mark.parametrize("kwargs", [{"instance": "ft06"}, {}], ids=["ft06", "default_line"])
@pytest.mark.parametrize("rule", [r.value for r in Rule])
def test_rules_follow_their_definition_with_valid_actions_over_whole_episodes(rule, kwargs):
    env = gym.make("smartline/Scheduling-v0", **kwargs)
    base = env.unwrapped
    baseline = make_baseline(env, rule)
    obs, _ = env.reset(seed=1)
    terminated = False
    while not terminated:
        decision = base.task.decision(base.frame)
        action = int(baseline.predict(obs)[0])
        assert base.action_masks()[action]
        if rule == "fifo":
            assert action == decision.jobs[0]
        else:
            steps, jobs = base.frame.jobs.step, base.line.spec.jobs
            keys = {j: definition_key(rule, jobs[j], int(steps[j]), base.frame) for j in decision.jobs}
            assert action == min(decision.jobs, key=lambda j: (keys[j], j))
        obs, _, terminated, _, info = env.step(action)
        assert not info["invalid_action"]


def energy_env() -> gym.Env:
    env = gym.make("smartline/Energy-v0")
    env.reset(seed=0)
    return env


def set_reading(obs: np.ndarray, task, name: str, value: float, valid: bool = True) -> None:
    """Write a physical reading (and its validity flag) into a setpoint task's observation."""
    names = task.encoder.names
    spec = task.spec
    obs[..., task.encoder.column(name)] = task.encoder.encode(name, value)
    flagged = [n for n in names if spec.sensors[spec.sensor_index(n)].dropouts]
    if name in flagged:
        obs[..., len(names) + flagged.index(name)] = float(valid)


def decoded(env: gym.Env, action) -> dict[str, float]:
    """The setpoints an action decodes to, by actuator name (NaN ones left out)."""
    base = env.unwrapped
    command: Command = base.task.command(action, base.frame)
    return {a.name: v for a, v in zip(base.line.spec.actuators, command.setpoints, strict=True) if not math.isnan(v)}


def test_decoder_reads_back_the_frame():
    env = gym.make("smartline/Factory-v0")
    obs, _ = env.reset(seed=0)
    for _ in range(30):
        obs, *_ = env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    base = env.unwrapped
    decoder = SensorDecoder(base.task)
    for i, sensor in enumerate(base.line.spec.sensors):
        raw = base.frame.values[i]
        assert decoder.valid(obs, sensor.name) == (not math.isnan(raw))
        if not math.isnan(raw):
            assert decoder.value(obs, sensor.name) == pytest.approx(raw, abs=1e-6 * (sensor.high - sensor.low))
    energy = energy_env()
    with pytest.raises(ValueError, match=r"EnergyTask does not observe sensor 'cut\.vibration_mm_s'"):
        SensorDecoder(energy.unwrapped.task).value(np.zeros(energy.observation_space.shape), "cut.vibration_mm_s")


@pytest.mark.parametrize("env_id", ["smartline/Speed-v0", "smartline/Energy-v0"])
def test_nominal_speed_decodes_to_speed_one_and_run(env_id):
    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    action, _ = make_baseline(env, "nominal_speed").predict(obs)
    assert env.action_space.contains(action)
    for name, value in decoded(env, action).items():
        assert value == (1.0 if name.endswith(".speed") else 2.0)


def test_time_of_use_stands_by_empty_stations_at_or_above_the_peak_price():
    env = energy_env()
    task = env.unwrapped.task
    tou = make_baseline(env, "tou_energy")
    assert tou.price_threshold_per_kwh == 0.28  # the default line's evening tariff
    obs = np.zeros(env.observation_space.shape, dtype=np.float32)
    set_reading(obs, task, "press.queue_parts", 3.0)
    for price, dear in [(0.28, True), (0.40, True), (0.22, False)]:
        set_reading(obs, task, "line.price_per_kwh", price)
        action, _ = tou.predict(obs)
        assert env.action_space.contains(action)
        modes = {k: v for k, v in decoded(env, action).items() if k.endswith(".mode")}
        assert modes == {f"{s}.mode": (1.0 if dear and s != "press" else 2.0) for s in task.spec.stations}
        assert all(v == 1.0 for k, v in decoded(env, action).items() if k.endswith(".speed"))


def maintenance_env() -> gym.Env:
    env = gym.make("smartline/Maintenance-v0")
    env.reset(seed=0)
    return env


def test_fixed_interval_maintains_due_stations_that_are_up():
    env = maintenance_env()
    task = env.unwrapped.task
    obs = np.zeros(env.observation_space.shape, dtype=np.float32)
    hours = {"cut": 100.0, "press": 99.0, "weld": 250.0, "paint": 120.0, "assemble": 130.0}
    states = {"weld": StationState.DOWN, "paint": StationState.MAINTENANCE, "assemble": StationState.BUSY}
    for s, h in hours.items():
        set_reading(obs, task, f"{s}.since_maintenance_h", h)
        set_reading(obs, task, f"{s}.state", float(states.get(s, StationState.IDLE)))
    action, _ = make_baseline(env, "fixed_interval").predict(obs)
    assert env.action_space.contains(action)
    assert action.tolist() == [1, 0, 0, 0, 1]
    assert decoded(env, action)["cut.maintain"] == 1.0
    assert make_baseline(env, "fixed_interval", interval_h=99).predict(obs)[0].tolist() == [1, 1, 0, 0, 1]
    assert make_baseline(env, "reactive").predict(obs)[0].tolist() == [0] * 5


def test_shipped_vibration_thresholds_are_flow5s_busy_vibration_at_health_0_6():
    """The config's numbers are what its comment says: idle + busy * (1 + gain * 0.4^2) per machine."""
    env = maintenance_env()
    params = env.unwrapped.line.params
    expected = []
    for st in params.stations:
        s = params.machines[st.machine].sensors
        expected.append(s.vibration_idle_mm_s + s.vibration_busy_mm_s * (1 + s.vibration_wear_gain * 0.4**2))
    np.testing.assert_allclose(make_baseline(env, "condition_based").trigger.threshold_mm_s, expected)
    factory = gym.make("smartline/Factory-v0")
    np.testing.assert_allclose(make_baseline(factory, "factory_rules").trigger.threshold_mm_s, expected)


def test_condition_based_maintains_on_valid_high_vibration_of_stations_that_are_up():
    env = maintenance_env()
    task = env.unwrapped.task
    rule = make_baseline(env, "condition_based", threshold_mm_s=5.0)
    obs = np.zeros(env.observation_space.shape, dtype=np.float32)
    readings = {
        "cut": (5.5, True),
        "press": (5.5, False),
        "weld": (4.5, True),
        "paint": (9.0, True),
        "assemble": (6, True),
    }
    for s, (vib, valid) in readings.items():
        set_reading(obs, task, f"{s}.vibration_mm_s", vib, valid)
        set_reading(obs, task, f"{s}.state", float(StationState.BUSY))
    set_reading(obs, task, "paint.state", float(StationState.DOWN))
    action, _ = rule.predict(obs)
    assert action.tolist() == [1, 0, 0, 0, 1]
    per_station = make_baseline(env, "condition_based", threshold_mm_s=[5.0, 5.0, 4.0, 5.0, 7.0])
    assert per_station.predict(obs)[0].tolist() == [1, 0, 1, 0, 0]


def test_ss_reorder_orders_the_level_nearest_up_to_s():
    env = gym.make("smartline/Inventory-v0")
    env.reset(seed=0)
    task = env.unwrapped.task
    supply = env.unwrapped.line.params.supply
    rule = make_baseline(env, "ss_reorder")
    assert rule.reorder.reorder_point_units == supply.reorder_point_units
    assert rule.reorder.order_up_to_units == supply.reorder_point_units + supply.order_quantity_units
    obs = np.zeros(env.observation_space.shape, dtype=np.float32)
    # 737.5 wants 1562.5, as near 1250 as 1875: the lower level, whichever way float32 rounds the stock
    for stock, on_order, level in [(500.0, 300.0, 2), (500.0, 0.0, 3), (801.0, 0.0, 0), (0.0, 0.0, 4), (737.5, 0.0, 2)]:
        set_reading(obs, task, "line.stock_units", stock)
        set_reading(obs, task, "line.on_order_units", on_order)
        action, _ = rule.predict(obs)
        assert env.action_space.contains(action)
        assert int(action) == level  # levels are multiples of 625 units; S = 2300
        assert decoded(env, action)["line.reorder_units"] == task.levels[level]


def test_factory_rules_combine_nominal_run_condition_and_reorder():
    env = gym.make("smartline/Factory-v0")
    env.reset(seed=0)
    task = env.unwrapped.task
    rule = make_baseline(env, "factory_rules", threshold_mm_s=5.0, reorder_point_units=800, order_up_to_units=2300)
    obs = np.zeros(env.observation_space.shape, dtype=np.float32)
    for s in task.spec.stations:
        set_reading(obs, task, f"{s}.state", float(StationState.BUSY))
        set_reading(obs, task, f"{s}.vibration_mm_s", 6.0 if s == "weld" else 1.0)
    set_reading(obs, task, "line.stock_units", 700.0)
    action, _ = rule.predict(obs)
    assert env.action_space.contains(action)
    setpoints = decoded(env, action)
    for s in task.spec.stations:
        assert setpoints[f"{s}.speed"] == 1.0
        assert setpoints[f"{s}.mode"] == 2.0
        assert setpoints[f"{s}.maintain"] == (1.0 if s == "weld" else 0.0)
    assert setpoints["line.reorder_units"] == pytest.approx(1600.0, abs=0.01)
    set_reading(obs, task, "line.stock_units", 900.0)
    assert decoded(env, rule.predict(obs)[0])["line.reorder_units"] == 0.0


def test_factory_rules_maintain_action_is_graded_in_vibration_and_requests_exactly_above_threshold():
    env = gym.make("smartline/Factory-v0")
    env.reset(seed=0)
    task = env.unwrapped.task
    rule = make_baseline(env, "factory_rules", threshold_mm_s=5.0, reorder_point_units=800, order_up_to_units=2300)
    maintain = [k for k, a in enumerate(task.spec.actuators) if a.name.endswith(".maintain")]
    obs = np.zeros(env.observation_space.shape, dtype=np.float32)
    set_reading(obs, task, "line.stock_units", 1500.0)
    readings = {"cut": 1.0, "press": 4.0, "weld": 4.99, "paint": 5.02, "assemble": 8.0}
    for s, v in readings.items():
        set_reading(obs, task, f"{s}.state", float(StationState.BUSY))
        set_reading(obs, task, f"{s}.vibration_mm_s", v)
    action, _ = rule.predict(obs)
    np.testing.assert_allclose(action[maintain[:3]], [0.1, 0.4, 0.499], atol=1e-3)  # half the ratio to 5 mm/s
    assert 0.5 < action[maintain[3]] < 0.51
    assert action[maintain[4]] == pytest.approx(0.8)
    setpoints = decoded(env, action)
    assert [setpoints[f"{s}.maintain"] for s in readings] == [0.0, 0.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("min_order_units", "position", "target"),
    [
        (1500.0, 700.0, 2300.0),  # S - s = the task's least order: S at every position
        (1500.0, 900.0, 2300.0),
        (1500.0, 2200.0, 2300.0),
        (500.0, 700.0, 2300.0),  # below s: S
        (500.0, 1500.0, 0.0),  # above s, where S would order (gap 800 >= 500): no stock
        (500.0, 2000.0, 2300.0),  # where S orders nothing (gap 300 < 500): S
    ],
)
def test_factory_rules_ask_for_the_target_wherever_it_orders_as_the_rule(min_order_units, position, target):
    env = gym.make("smartline/Factory-v0", reorder="order_up_to", min_order_units=min_order_units)
    env.reset(seed=0)
    task = env.unwrapped.task
    rule = make_baseline(env, "factory_rules", threshold_mm_s=5.0, reorder_point_units=800, order_up_to_units=2300)
    largest = rule.reorder.max_order_units
    obs = np.zeros(env.observation_space.shape, dtype=np.float32)
    set_reading(obs, task, "line.stock_units", position)
    action, _ = rule.predict(obs)
    assert action[-1] == pytest.approx(2.0 * target / largest - 1.0, abs=1e-6)


class HiddenLine:
    """A `Line` that is not the twin: forwards to one and shows only its spec."""

    def __init__(self, line: Line) -> None:
        self._line = line
        self.spec = line.spec

    def reset(self, seed: int | None = None) -> Frame:
        """Reset the hidden line."""
        return self._line.reset(seed)

    def write(self, command: Command) -> None:
        """Write to the hidden line."""
        self._line.write(command)

    def advance(self, dt: float) -> Frame:
        """Advance the hidden line."""
        return self._line.advance(dt)

    def read(self) -> Frame:
        """Read the hidden line."""
        return self._line.read()

    def close(self) -> None:
        """Close the hidden line."""
        self._line.close()


def test_a_baseline_takes_the_same_parameters_and_actions_on_a_line_that_is_not_the_twin():
    for task_class, name in [(EnergyTask, "tou_energy"), (FactoryTask, "factory_rules")]:
        twin = resolve_line("flow5", task_class.levers, 60.0, None)
        hidden = HiddenLine(resolve_line("flow5", task_class.levers, 60.0, None))
        assert isinstance(hidden, Line)
        on_twin = make_baseline(LineEnv(twin, task_class(twin.spec)), name)
        env = LineEnv(hidden, task_class(hidden.spec))
        on_hidden = make_baseline(env, name)
        obs, _ = env.reset(seed=0)
        batch = [obs]
        for _ in range(20):
            obs, *_ = env.step(env.action_space.sample())
            batch.append(obs)
        np.testing.assert_array_equal(on_twin.predict(np.stack(batch))[0], on_hidden.predict(np.stack(batch))[0])
    assert on_hidden.reorder.reorder_point_units == on_twin.reorder.reorder_point_units == 800.0
    np.testing.assert_array_equal(on_hidden.trigger.threshold_mm_s, on_twin.trigger.threshold_mm_s)


def test_make_baseline_reads_the_config_and_overrides_go_on_top():
    env = gym.make("smartline/Inventory-v0")
    assert configured_params("ss_reorder") == {"reorder_point_units": 800.0, "order_up_to_units": 2300.0}
    assert configured_params("reactive") == {}
    rule = make_baseline(env, "ss_reorder", reorder_point_units=1000.0)
    assert (rule.reorder.reorder_point_units, rule.reorder.order_up_to_units) == (1000.0, 2300.0)


def test_thresholds_by_station_name_must_cover_exactly_the_line_stations():
    env = maintenance_env()
    by_name = {"cut": 3.0, "press": 6.0, "weld": 2.0, "paint": 2.5, "assemble": 4.0}
    rule = make_baseline(env, "condition_based", threshold_mm_s=by_name)
    assert rule.trigger.threshold_mm_s.tolist() == [3.0, 6.0, 2.0, 2.5, 4.0]
    other_line = {k: v for k, v in by_name.items() if k != "assemble"} | {"mill1": 3.0}
    with pytest.raises(ValueError, match=r"missing \['assemble'\], unknown \['mill1'\]"):
        make_baseline(env, "condition_based", threshold_mm_s=other_line)
    with pytest.raises(ValueError, match=r"threshold_mm_s\[paint\] must be a finite number > 0"):
        make_baseline(env, "condition_based", threshold_mm_s={**by_name, "paint": 0.0})


@pytest.mark.parametrize(
    ("env_id", "name", "params", "message"),
    [
        ("smartline/Energy-v0", "tou_energy", {"price_threshold_per_kwh": float("nan")}, "price_threshold_per_kwh"),
        ("smartline/Energy-v0", "tou_energy", {"price_threshold_per_kwh": -0.1}, "price_threshold_per_kwh"),
        ("smartline/Maintenance-v0", "fixed_interval", {"interval_h": 0}, "interval_h"),
        ("smartline/Maintenance-v0", "fixed_interval", {"interval_h": True}, "interval_h"),
        ("smartline/Maintenance-v0", "condition_based", {"threshold_mm_s": -1.0}, r"threshold_mm_s\[cut\]"),
        ("smartline/Maintenance-v0", "condition_based", {"threshold_mm_s": [3.0, 4.0]}, "threshold_mm_s: give"),
        ("smartline/Inventory-v0", "ss_reorder", {"reorder_point_units": -5.0}, "reorder_point_units"),
        ("smartline/Inventory-v0", "ss_reorder", {"order_up_to_units": 700.0}, "order_up_to_units"),
        ("smartline/Factory-v0", "factory_rules", {"order_up_to_units": math.inf}, "order_up_to_units"),
        ("smartline/Speed-v0", "speedy", {}, "baseline 'speedy' is unknown"),
        (
            "smartline/Maintenance-v0",
            "fixed_interval",
            {"interval": 50.0},
            r"fixed_interval: .*'interval'.*'interval_h'\?",
        ),
        (
            "smartline/Speed-v0",
            "nominal_speed",
            {"speed": 1.0},
            "nominal_speed: unknown parameter 'speed'; it takes none",
        ),
        ("smartline/Scheduling-v0", "spt", {"rule": "lpt"}, "spt: unknown parameter 'rule'"),
    ],
)
def test_bad_params_raise_errors_naming_them(env_id, name, params, message):
    env = gym.make(env_id)
    with pytest.raises(ValueError, match=message):
        make_baseline(env, name, **params)


def test_an_unknown_dispatch_rule_is_named():
    with pytest.raises(ValueError, match="rule 'sjf' is unknown; choose one of fifo, spt"):
        DispatchRule(gym.make("smartline/Scheduling-v0"), rule="sjf")


def test_a_baseline_refuses_an_env_of_another_task():
    with pytest.raises(TypeError, match="DispatchRule drives SchedulingTask, not SpeedTask"):
        DispatchRule(gym.make("smartline/Speed-v0"))
    with pytest.raises(TypeError, match="ReactiveMaintenance drives MaintenanceTask, not FactoryTask"):
        make_baseline(gym.make("smartline/Factory-v0"), "reactive")


TASK_OF = {
    **{r.value: "Scheduling" for r in Rule},
    "cpsat": "Scheduling",
    "nominal_speed": "Speed",
    "fixed_speed": "Speed",
    "tou_energy": "Energy",
    "reactive": "Maintenance",
    "fixed_interval": "Maintenance",
    "condition_based": "Maintenance",
    "ss_reorder": "Inventory",
    "factory_rules": "Factory",
}


@pytest.mark.parametrize("name", [n for n in BASELINES if n not in ("fifo", "cpsat")])  # these read their env's line
def test_batch_predict_matches_single_predictions(name):
    task = TASK_OF[name]
    env = gym.make(f"smartline/{task}-v0")
    obs, _ = env.reset(seed=3)
    batch = [obs]
    for _ in range(2):
        action = int(env.unwrapped.action_masks().argmax()) if task == "Scheduling" else env.action_space.sample()
        obs, *_ = env.step(action)
        batch.append(obs)
    baseline = make_baseline(env, name)
    actions, _ = baseline.predict(np.stack(batch))
    assert actions.shape == (3, *env.action_space.shape)
    for row, o in zip(actions, batch, strict=True):
        np.testing.assert_array_equal(row, baseline.predict(o)[0])
    with pytest.raises(ValueError, match="observation: expected shape"):
        baseline.predict(np.zeros(5))


def test_every_registered_baseline_builds_and_each_task_compares_with_its_own():
    assert set(TASK_OF) == set(BASELINES)
    for name, task in TASK_OF.items():
        make_baseline(gym.make(f"smartline/{task}-v0"), name)
    configs = [yaml.safe_load(p.read_text()) for p in (CONFIG_DIR / "task").glob("*.yaml")]
    assert {c["name"] for c in configs} == set(TASKS)
    for config in configs:
        assert TASK_OF[config["baseline"]] == config["name"]
