"""A machine type of the twin: speed range, power per state, wear, failures, maintenance, scrap and sensors.

Units are in the field names, as in `hardware.twin.params` (which re-exports these classes).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from hardware.twin.schema import at_least, finite, non_negative, positive, probability, require


class Distribution(enum.Enum):
    """Shape of a stochastic duration around its mean."""

    DETERMINISTIC = "deterministic"
    EXPONENTIAL = "exponential"
    GAMMA = "gamma"  # with the coefficient of variation given beside it


@dataclass(frozen=True)
class PowerParams:
    """Electrical power drawn in each station state, kW (busy at nominal speed)."""

    off: float = 0.0
    standby: float = 0.5
    warmup: float = 3.0
    idle: float = 2.0
    busy: float = 8.0
    blocked: float = 2.0
    changeover: float = 3.0
    down: float = 0.5
    maintenance: float = 1.0

    def __post_init__(self) -> None:
        """Reject negative power."""
        non_negative(self, *self.__dataclass_fields__)


@dataclass(frozen=True)
class SensorParams:
    """How health, load and speed show in vibration, bearing temperature and motor current."""

    sample_period_s: float = 1.0
    vibration_idle_mm_s: float = 0.5
    vibration_busy_mm_s: float = 2.0  # at nominal speed, scales with speed
    vibration_wear_gain: float = 4.0  # multiplier on busy vibration at zero health: 1 + gain*(1-h)^2
    temperature_ambient_c: float = 25.0
    temperature_rise_busy_c: float = 30.0  # steady-state rise when busy at nominal speed
    temperature_rise_wear_c: float = 25.0  # extra steady-state rise at zero health while busy
    temperature_time_constant_s: float = 600.0
    current_idle_a: float = 3.0
    current_busy_a: float = 15.0  # at nominal speed and load 1
    current_wear_gain: float = 0.2  # busy current multiplier 1 + gain*(1-h): friction of a worn machine
    noise_std_ratio: float = 0.03  # white noise, as a fraction of the true value
    drift_std_per_sqrt_h: float = 0.005  # slow multiplicative calibration drift
    dropout_probability: float = 0.002  # chance that a sample reads NaN
    # reported range top = headroom x the largest true reading (or rise above ambient): room for
    # white noise (noise_std_ratio) and calibration drift on top of the worst true value
    range_headroom: float = 1.25

    def __post_init__(self) -> None:
        """Check ranges."""
        positive(self, "sample_period_s", "temperature_time_constant_s")
        non_negative(
            self,
            "vibration_idle_mm_s",
            "vibration_busy_mm_s",
            "vibration_wear_gain",
            "temperature_rise_busy_c",
            "temperature_rise_wear_c",
            "current_idle_a",
            "current_busy_a",
            "current_wear_gain",
            "noise_std_ratio",
            "drift_std_per_sqrt_h",
        )
        finite(self, "temperature_ambient_c")
        probability(self, "dropout_probability")
        at_least(self, 1.0, "range_headroom")


@dataclass(frozen=True)
class MachineParams:
    """One machine type: speed range, power, wear, failures, maintenance, scrap and sensors."""

    speed_min_ratio: float = 0.5
    speed_max_ratio: float = 1.2
    busy_power_speed_exponent: float = 2.0  # busy power = power_kw.busy * speed^exponent
    power_kw: PowerParams = field(default_factory=PowerParams)
    warmup_from_off_s: float = 900.0
    warmup_from_standby_s: float = 60.0
    processing_time_distribution: Distribution = Distribution.GAMMA
    processing_time_cv: float = 0.1
    wear_per_busy_h: float = 0.01  # health lost per busy hour at nominal speed and load 1
    wear_speed_exponent: float = 2.0
    failure_rate_base_per_h: float = 0.002  # per busy hour, at full health
    failure_rate_wear_per_h: float = 0.1  # added at zero health: rate = base + wear*(1-h)^shape
    failure_wear_shape: float = 2.0
    repair_time_mean_s: float = 3600.0
    repair_time_cv: float = 0.5
    repair_cost: float = 800.0
    maintenance_time_mean_s: float = 900.0
    maintenance_time_cv: float = 0.2
    maintenance_cost: float = 150.0
    scrap_probability: float = 0.01  # at nominal speed and full health
    scrap_speed_exponent: float = 4.0
    scrap_wear_gain: float = 2.0  # scrap probability multiplier 1 + gain*(1-h)
    sensors: SensorParams = field(default_factory=SensorParams)

    def __post_init__(self) -> None:
        """Check ranges and that the speed range contains nominal speed."""
        positive(self, "speed_min_ratio", "speed_max_ratio")
        require(
            self.speed_min_ratio <= 1.0 <= self.speed_max_ratio,
            "speed_min_ratio",
            f"speed range [{self.speed_min_ratio}, {self.speed_max_ratio}] must contain 1.0",
        )
        non_negative(
            self,
            "busy_power_speed_exponent",
            "warmup_from_off_s",
            "warmup_from_standby_s",
            "processing_time_cv",
            "wear_per_busy_h",
            "wear_speed_exponent",
            "failure_rate_base_per_h",
            "failure_rate_wear_per_h",
            "failure_wear_shape",
            "repair_time_mean_s",
            "repair_time_cv",
            "repair_cost",
            "maintenance_time_mean_s",
            "maintenance_time_cv",
            "maintenance_cost",
            "scrap_speed_exponent",
            "scrap_wear_gain",
        )
        require(
            self.warmup_from_standby_s <= self.warmup_from_off_s,
            "warmup_from_standby_s",
            f"{self.warmup_from_standby_s} s must not exceed warmup_from_off_s ({self.warmup_from_off_s} s): "
            "a warm machine warms up no slower than a cold one",
        )
        probability(self, "scrap_probability")
