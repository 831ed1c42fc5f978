"""Each task's reward equals its documented KPI formula, with the weights the user gave."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the ids)


def d(before, after, name: str) -> float:
    return getattr(after, name) - getattr(before, name)


def used(before, after) -> float:
    """Machine health used over a step: worn off less restored by repairs and maintenance."""
    return d(before, after, "health_consumed") - d(before, after, "health_restored")


FORMULAS = {
    "Speed": (
        {
            "part_value": 3.0,
            "energy": 2.0,
            "scrap_cost": 5.0,
            "downtime_cost_per_h": 7.0,
            "maintenance_cost": 1.5,
            "wear_cost_per_health": 900,
        },
        lambda w, b, a: (
            w["part_value"] * d(b, a, "good_parts")
            - w["energy"] * d(b, a, "energy_cost")
            - w["scrap_cost"] * d(b, a, "scrap_parts")
            - w["downtime_cost_per_h"] * d(b, a, "unplanned_downtime_s") / 3600
            - w["maintenance_cost"] * (d(b, a, "repair_cost") + d(b, a, "preventive_cost"))
            - w["wear_cost_per_health"] * used(b, a)
        ),
    ),
    "Energy": (
        {
            "part_value": 4.0,
            "energy": 1.5,
            "tardiness_cost_per_h": 9.0,
            "scrap_cost": 6.0,
            "maintenance_cost": 2.0,
            "wear_cost_per_health": 800,
        },
        lambda w, b, a: (
            w["part_value"] * d(b, a, "good_parts")
            - w["energy"] * d(b, a, "energy_cost")
            - w["tardiness_cost_per_h"] * d(b, a, "tardiness_s") / 3600
            - w["scrap_cost"] * d(b, a, "scrap_parts")
            - w["maintenance_cost"] * (d(b, a, "repair_cost") + d(b, a, "preventive_cost"))
            - w["wear_cost_per_health"] * used(b, a)
        ),
    ),
    "Maintenance": (
        {
            "repair": 2.0,
            "preventive": 0.5,
            "planned_downtime_cost_per_h": 10.0,
            "unplanned_downtime_cost_per_h": 30.0,
            "wear_cost_per_health": 700.0,
        },
        lambda w, b, a: (
            -(
                w["repair"] * d(b, a, "repair_cost")
                + w["preventive"] * d(b, a, "preventive_cost")
                + w["planned_downtime_cost_per_h"] * d(b, a, "planned_downtime_s") / 3600
                + w["unplanned_downtime_cost_per_h"] * d(b, a, "unplanned_downtime_s") / 3600
                + w["wear_cost_per_health"] * used(b, a)
            )
        ),
    ),
    "Inventory": (
        {"holding_cost_per_unit_h": 0.5, "stockout_cost_per_h": 100.0, "order_cost": 25.0},
        lambda w, b, a: (
            -(
                w["holding_cost_per_unit_h"] * d(b, a, "stock_unit_h")
                + w["stockout_cost_per_h"] * d(b, a, "stockout_time_s") / 3600
                + w["order_cost"] * d(b, a, "orders_placed")
            )
        ),
    ),
    "Factory": (
        {
            "throughput": 2.0,
            "energy_cost": 3.0,
            "co2": 4.0,
            "downtime": 5.0,
            "tardiness": 6.0,
            "scrap": 7.0,
            "maintenance_cost": 0.5,
            "wear": 600.0,
            "holding": 0.01,
            "ordering": 30.0,
            "stockout": 200.0,
        },
        lambda w, b, a: (
            w["throughput"] * d(b, a, "good_parts")
            - w["energy_cost"] * d(b, a, "energy_cost")
            - w["co2"] * d(b, a, "co2_kg")
            - w["downtime"] * (d(b, a, "planned_downtime_s") + d(b, a, "unplanned_downtime_s")) / 3600
            - w["tardiness"] * d(b, a, "tardiness_s") / 3600
            - w["scrap"] * d(b, a, "scrap_parts")
            - w["maintenance_cost"] * (d(b, a, "repair_cost") + d(b, a, "preventive_cost"))
            - w["wear"] * used(b, a)
            - w["holding"] * d(b, a, "stock_unit_h")
            - w["ordering"] * d(b, a, "orders_placed")
            - w["stockout"] * d(b, a, "stockout_time_s") / 3600
        ),
    ),
}


@pytest.mark.parametrize("task", sorted(FORMULAS))
def test_reward_is_the_documented_formula(task):
    weights, formula = FORMULAS[task]
    env = gym.make(f"smartline/{task}-v0", weights=weights, scenario="breakdown_wave")
    env.action_space.seed(0)
    _, info = env.reset(seed=0)
    nonzero = set()
    for _ in range(400):
        before = info["kpis"]
        _, reward, _, _, info = env.step(env.action_space.sample())
        expected = formula(weights, before, info["kpis"])
        assert reward == pytest.approx(expected, rel=1e-9, abs=1e-9)
        terms = {k: v for k, v in info.items() if k.startswith("reward/")}
        assert sum(terms.values()) == pytest.approx(reward, rel=1e-9, abs=1e-9)
        nonzero |= {k for k, v in terms.items() if v != 0}
    assert len(nonzero) >= 2, f"too few terms moved to check the formula: {nonzero}"
    if task not in ("Inventory", "Factory"):
        assert "reward/wear" in nonzero  # every task with a speed or maintenance lever prices wear
    if task == "Factory":
        assert {"reward/wear", "reward/holding", "reward/ordering"} <= nonzero


def test_factory_reports_the_objective_vector():
    env = gym.make("smartline/Factory-v0")
    env.action_space.seed(1)
    _, info = env.reset(seed=1)
    for _ in range(50):
        before = info["kpis"]
        _, _, _, _, info = env.step(env.action_space.sample())
        after = info["kpis"]
        expected = [
            d(before, after, "good_parts"),
            d(before, after, "energy_cost"),
            d(before, after, "co2_kg"),
            (d(before, after, "planned_downtime_s") + d(before, after, "unplanned_downtime_s")) / 3600,
            d(before, after, "tardiness_s") / 3600,
            d(before, after, "scrap_parts"),
            d(before, after, "repair_cost") + d(before, after, "preventive_cost"),
            used(before, after),
            d(before, after, "stock_unit_h"),
            d(before, after, "orders_placed"),
            d(before, after, "stockout_time_s") / 3600,
        ]
        np.testing.assert_allclose(info["objectives"], expected, rtol=1e-12, atol=1e-12)


def test_the_inventory_stockout_term_prices_the_hours_the_line_waited_for_material():
    """Never reordering runs the store dry: the stockout term is its price times the hours held up."""
    env = gym.make("smartline/Inventory-v0", weights={"stockout_cost_per_h": 100.0})
    env.reset(seed=0)
    total, done = 0.0, False
    while not done:
        _, _, terminated, truncated, info = env.step(0)
        total += info["reward/stockout"]
        done = terminated or truncated
    assert info["kpis"].stockout_time_s > 3600.0
    assert total == pytest.approx(-100.0 * info["kpis"].stockout_time_s / 3600.0, rel=1e-9)
