"""The job-shop gap harness: rules through the env, CP-SAT, a learned scheduler, checked schedules and the reports."""

from __future__ import annotations

import csv
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

import envs  # noqa: F401  (registers the ids)
from agents.baselines import make_baseline
from agents.cpsat import schedule_makespan, semi_active
from configs import CONFIG_DIR
from envs.jobshop import Instance, ScheduleError, check_schedule, load_instance
from experiments.errors import ConfigError
from experiments.jssp_gaps import jssp_gaps, run_gaps

CALLS: list[tuple[str, int, int]] = []


class JobOrderScheduler:
    """A stand-in for a learned scheduler: every machine serves the jobs in id order, left-shifted."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def solve(self, instance: Instance, samples: int, seed: int) -> np.ndarray:
        """Start times of the job-order schedule; records the call."""
        CALLS.append((instance.name, samples, seed))
        if self.path.name == "broken":  # job 1's first operation (8 on machine 1) moved to 0, onto job 0's [4, 10)
            starts = semi_active(instance, job_order(instance))
            starts[1, 0] = starts[0, 0]
            return starts
        return semi_active(instance, job_order(instance))


def job_order(instance: Instance) -> list[list[int]]:
    """Each machine's jobs in id order."""
    return [[j for j, route in enumerate(instance.routes) if m in route] for m in range(instance.n_machines)]


def load_scheduler(path: Path) -> JobOrderScheduler:
    """What `<module>.load_scheduler(path)` is for the harness."""
    return JobOrderScheduler(path)


def config(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(
            "jssp_gaps",
            overrides=[
                "~groups",
                "+groups={tiny: [ft06, la01]}",
                "cpsat.time_limits_s=[5]",
                "cpsat.workers=1",
                *overrides,
            ],
        )


LEARNED = "+learned.fake={module: tests.integration.test_jssp_gaps, path: %s, samples: 8, seed: 3}"


def env_makespan(instance: str, rule: str) -> float:
    """A rule's makespan read straight from the env, without the harness."""
    env = gym.make("smartline/Scheduling-v0", instance=instance)
    rule_policy = make_baseline(env, rule)
    obs, _ = env.reset(seed=0)
    terminated = False
    while not terminated:
        obs, _, terminated, _, info = env.step(rule_policy.predict(obs)[0])
    return float(info["makespan"])


def test_the_harness_reports_env_rule_makespans_cpsat_optima_and_the_learned_schedule(tmp_path):
    CALLS.clear()
    results = jssp_gaps(config("rules=[spt,mwkr]", LEARNED % (tmp_path / "run")), tmp_path)
    by = {(r.instance.name, r.policy): r for r in results}
    assert len(results) == 2 * 4
    for name in ("ft06", "la01"):
        for rule in ("spt", "mwkr"):
            assert by[(name, rule)].makespan == env_makespan(name, rule)
        cpsat = by[(name, "cpsat 5s")]
        assert cpsat.gap == 0.0
        assert cpsat.status == "OPTIMAL"
        assert cpsat.lower_bound == cpsat.makespan
        instance = load_instance(name)
        assert by[(name, "fake")].makespan == schedule_makespan(instance, semi_active(instance, job_order(instance)))
    assert by[("ft06", "cpsat 5s")].makespan == 55
    assert by[("ft06", "spt")].makespan == 88  # the platform's SPT, non-delay through the env: 60% above 55
    assert by[("la01", "mwkr")].makespan == 735
    assert CALLS == [("ft06", 1, 3), ("ft06", 8, 3), ("la01", 8, 3)]  # one sample untimed first: the start-up

    table = (tmp_path / "jssp_gaps.md").read_text()
    assert "| ft06 | 6x6 | 55 | 88 (60.0%) | 61 (10.9%) | 55 (0.0%) opt |" in table
    assert "| **beats the best rule** | | |  |  | 2/2 |" in table
    assert "| **proven optimal** | | |  |  | 2/2 |" in table
    mwkr_mean = 100 * np.mean([load_instance(n).gap(by[(n, "mwkr")].makespan) for n in ("ft06", "la01")])
    assert (
        f"| **mean gap** | | | {100 * np.mean([88 / 55 - 1, by[('la01', 'spt')].gap]):.1f}% | {mwkr_mean:.1f}% |"
        in table
    )
    with (tmp_path / "jssp_gaps.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8
    for r in rows:  # the solver's load-independent work, on CP-SAT rows only
        assert (r["deterministic_time"] != "") == (r["policy"] == "cpsat 5s")
        assert r["policy"] != "cpsat 5s" or float(r["deterministic_time"]) > 0
    assert {(r["instance"], r["policy"], r["makespan"], r["best_known"]) for r in rows} >= {
        ("ft06", "cpsat 5s", "55", "55")
    }
    assert (tmp_path / "jssp_gaps.png").stat().st_size > 10_000


def test_a_solver_limit_that_runs_out_before_a_schedule_is_a_result_not_the_end_of_the_run(tmp_path):
    """CP-SAT finding nothing in its limit ended the whole harness in a traceback, every result before it lost."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "jssp_gaps",
            overrides=[
                "~groups",
                "+groups={big: [ta11]}",
                "cpsat.time_limits_s=[1e-06]",
                "cpsat.workers=1",
                "rules=[spt]",
            ],
        )
    results = jssp_gaps(cfg, tmp_path)
    spt, cpsat = results
    assert (spt.policy, spt.makespan) == ("spt", env_makespan("ta11", "spt"))
    assert (cpsat.policy, cpsat.makespan, cpsat.status) == ("cpsat 1e-06s", None, "UNKNOWN")
    assert np.isnan(cpsat.gap)
    table = (tmp_path / "jssp_gaps.md").read_text()
    assert f"| ta11 | 20x15 | 1357 | {spt.makespan} ({100 * spt.gap:.1f}%) | no schedule (UNKNOWN) |" in table
    assert f"| **mean gap** | | | {100 * spt.gap:.1f}% | none (1/1 without a schedule) |" in table
    assert "| **proven optimal** | | |  | 0/1 |" in table
    with (tmp_path / "jssp_gaps.csv").open() as f:
        row = list(csv.DictReader(f))[1]
    assert (row["policy"], row["makespan"], row["gap"], row["status"]) == ("cpsat 1e-06s", "", "", "UNKNOWN")


def test_an_invalid_learned_schedule_is_refused_naming_the_instance_and_operation(tmp_path):
    with pytest.raises(
        ScheduleError,
        match=r"instance 'ft06': job 0 operation 2 starts on machine 1 at 4, "
        r"while job 1 operation 0 runs there \[0, 8\)",
    ):
        run_gaps(config("rules=[]", "cpsat.time_limits_s=[]", LEARNED % (tmp_path / "broken")))


@pytest.mark.parametrize(
    ("starts", "message"),
    [
        ([[0, 1], [0, 3]], "instance 'two': job 0 operation 1 starts at 1, before its operation 0 ends at 3"),
        (
            [[0, 3], [0, 4]],
            r"instance 'two': job 0 operation 1 starts on machine 1 at 3, while job 1 operation 0 runs there \[0, 4\)",
        ),
        ([[0, 3], [0, 4.5]], "instance 'two': job 1 operation 1 starts at 4.5, not a whole time >= 0"),
        ([[0, 3, 5], [0, 4, 6]], r"instance 'two': expected start times of shape \(2, 2\), got \(2, 3\)"),
    ],
)
def test_check_schedule_names_what_is_wrong(starts, message):
    two = Instance("two", 2, routes=((0, 1), (1, 0)), times=((3, 2), (4, 1)))
    assert check_schedule(two, [[0, 4], [0, 4]]) == 6
    with pytest.raises(ScheduleError, match=message):
        check_schedule(two, starts)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["rules=[sptt]"], "rules: 'sptt' is not a dispatching rule \\(did you mean spt\\?\\)"),
        (
            ["+groups.extra=[ta011]"],
            "groups.extra: 'ta011' is neither a shipped instance \\(did you mean ta11\\?\\) nor an instance file",
        ),
        (
            ["+best_known.ft06=55"],
            "best_known.ft06: ft06 holds a shipped instance's jobs, whose best known makespan \\(55\\)",
        ),
        (["+best_known.ta41=2006"], "best_known.ta41: no instance of the groups is called so"),
        (["+groups.extra=[la01,ft06,la01]"], "groups.extra: 'la01' is named twice"),  # it weighed twice in the mean
        (["+learned.x={module: tests.integration.test_jssp_gaps}"], "learned.x: expected \\{module"),
        (["+learned.x={module: agents.nowhere, path: p}"], "learned: module 'agents.nowhere' not found"),
        (["+learned.x={module: agents.cpsat, path: p}"], "learned: module 'agents.cpsat' has no load_scheduler"),
        (["+learned.x={module: m, path: p, samples: 0}"], "learned.x.samples: must be a positive whole number, got 0"),
        (
            ["+learned.x={module: m, path: p, samples: true}"],
            "learned.x.samples: must be a positive whole number, got True",
        ),
        (["+learned.x={module: m, path: p, seed: true}"], "learned.x.seed: must be a whole number >= 0, got True"),
        (["+learned.mwkr={module: m, path: p}"], "learned.mwkr: 'mwkr' is a dispatching rule's name"),
        (["rules=[spt]", "+learned.edd={module: m, path: p}"], "learned.edd: 'edd' is a dispatching rule's name"),
        (["rules=[spt,mwkr,spt]"], "rules: column 'spt' comes twice"),
        (["cpsat.time_limits_s=[5,5.0]"], "cpsat.time_limits_s: column 'cpsat 5s' comes twice"),
        (["rules=[]", "cpsat.time_limits_s=[]"], "all empty, so there is no policy to run"),  # the plot crashed
        (["cpsat.seed=1.7"], "cpsat.seed: must be a whole number >= 0, got 1.7"),  # it ran, and reported, seed 1
        (["cpsat.workers=1.9"], "cpsat.workers: must be a positive whole number, got 1.9"),
        (["env_seed=true"], "env_seed: must be a whole number >= 0, got True"),
        (["cpsat.time_limits_s=[true]"], "cpsat.time_limits_s: must be a positive number, got True"),
    ],
)
def test_config_mistakes_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        run_gaps(config(*overrides))


def test_a_learned_label_that_is_a_cpsat_column_is_refused():
    cfg = config()
    with open_dict(cfg):
        cfg.learned = {"cpsat 5s": {"module": "tests.integration.test_jssp_gaps", "path": "p"}}
    with pytest.raises(ConfigError, match=r"learned\.cpsat 5s: column 'cpsat 5s' comes also from cpsat\.time_limits_s"):
        run_gaps(cfg)


MINE = "3 3\n0 5 0 3 1 2\n1 4 2 6 1 1\n2 2 2 2 0 7\n"  # OR-Library layout; job 0 visits machine 0 twice


def test_an_instance_file_is_measured_against_the_best_known_makespan_given_for_it(tmp_path):
    """Only shipped instances could be measured: a researcher's ta41 or DMU file was refused by name."""
    (tmp_path / "mine.txt").write_text(MINE)
    (tmp_path / "renamed.txt").write_bytes((CONFIG_DIR.parent / "envs" / "instances" / "ft06.txt").read_bytes())
    groups = f"+groups.files=[{tmp_path / 'mine.txt'},{tmp_path / 'renamed.txt'}]"
    cfg = config("~groups", groups, "rules=[spt]", "cpsat.time_limits_s=[5]", "+best_known.mine=15")
    results = run_gaps(cfg)
    by = {(r.instance.name, r.policy): r for r in results}
    assert by["mine", "cpsat 5s"].makespan == 15
    assert by["mine", "cpsat 5s"].status == "OPTIMAL"
    assert by["mine", "spt"].gap == pytest.approx((by["mine", "spt"].makespan - 15) / 15)
    assert by["renamed", "cpsat 5s"].instance.best_known == 55  # ft06's jobs under another name: ft06's optimum
    assert by["renamed", "cpsat 5s"].gap == 0.0


@pytest.mark.parametrize(
    ("text", "extra", "message"),
    [
        (MINE, [], r"groups\.files: .*mine\.txt has no best known makespan .*'\+best_known\.mine=<makespan>'"),
        (MINE, ["+best_known.mine=12"], r"best_known\.mine: 12 is below CP-SAT's proven lower bound 15"),
        (MINE, ["+best_known.mine=0"], r"best_known\.mine: must be a positive whole number, got 0"),
        (
            "3 3\n0 5 0 3\n",
            ["+best_known.mine=15"],
            r"groups\.files: instance file '.*mine\.txt', line 2: expected 6 numbers",
        ),
    ],
)
def test_an_instance_file_without_a_usable_best_known_makespan_is_refused(tmp_path, text, extra, message):
    (tmp_path / "mine.txt").write_text(text)
    cfg = config("~groups", f"+groups.files=[{tmp_path / 'mine.txt'}]", "rules=[spt]", *extra)
    with pytest.raises(ConfigError, match=message):
        run_gaps(cfg)


def test_a_best_known_makespan_given_for_a_file_of_a_shipped_instance_is_refused(tmp_path):
    (tmp_path / "renamed.txt").write_bytes((CONFIG_DIR.parent / "envs" / "instances" / "ft06.txt").read_bytes())
    cfg = config("~groups", f"+groups.files=[{tmp_path / 'renamed.txt'}]", "rules=[spt]", "+best_known.renamed=50")
    with pytest.raises(
        ConfigError, match=r"best_known\.renamed: .*renamed\.txt holds a shipped instance's jobs, .*\(55\)"
    ):
        run_gaps(cfg)
