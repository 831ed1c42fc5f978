"""What the twin's instruments read: noisy, drifting, sometimes missing samples with their own stamps.

Per station: state code, queue length, speed setpoint, vibration RMS, bearing temperature, motor
current and hours since the last maintenance; per line: WIP, raw stock, stock on order, electricity
price and grid carbon intensity. The three physical sensors are sampled with their own period and
phase, carry white noise, a slow calibration drift and dropouts (NaN); their stamp is the sample
instant, the value reflects the machine's state at read time (at most one sample period later).
Counters and market values are exact and stamped at read time.
"""

from __future__ import annotations

import numpy as np

from hardware.interface import RUNNING_STATES, SensorSpec
from hardware.twin.params import LINE_PREFIX, GridParams, LineParams, MachineParams
from hardware.twin.plant import Plant
from hardware.twin.station import State, Station

STATION_SENSORS = (
    "state",
    "setup_variant",
    "queue_parts",
    "speed_ratio",
    "vibration_mm_s",
    "bearing_temp_c",
    "motor_current_a",
    "since_maintenance_h",
)
LINE_SENSORS = ("wip_parts", "stock_units", "on_order_units", "price_per_kwh", "carbon_kg_per_kwh")
_PHYSICAL = (4, 5, 6)  # positions of the noisy instruments within STATION_SENSORS
INSTRUMENTS = tuple(STATION_SENSORS[i] for i in _PHYSICAL)  # the noisy instruments, sampled with their own period
_POOL = 4096  # random draws fetched per numpy call for the instruments' noise
_BUSY = State.BUSY
_YEAR_H = 24.0 * 365.0  # range of hours since maintenance of a machine that never wears
_ONE_UNIT = 1.0  # log reference of counts: log1p of the count, so a few parts stay visible
_DAY_H = 24.0  # log reference of hours since maintenance: linear over a day, logarithmic over a life


def sensor_specs(params: LineParams) -> tuple[SensorSpec, ...]:
    """Name, unit and physical range of every value in a frame, in frame order.

    Ranges come from the line definition, never from a scenario (a policy trained without one is
    evaluated under one, on the same encoding): instrument tops from the worst true reading (top
    speed, heaviest variant, zero health) times `range_headroom`; unbounded counts from the orders
    of `backlog_range_h` hours; stock from the reorder rule plus one largest order; price from the
    peak tariff, its spikes and `price_range_factor`. Heavy-tailed values (unbounded counts, hours
    since maintenance, price) are marked for a log scale.
    """
    specs: list[SensorSpec] = []
    loads = [v.load for v in params.variants]
    backlog = _backlog_high(params)
    for i, st in enumerate(params.stations):
        m = params.machines[st.machine]
        s = m.sensors
        hardest = m.speed_max_ratio * max(loads)  # top speed on the heaviest variant
        vib = s.vibration_idle_mm_s + s.vibration_busy_mm_s * hardest * (1 + s.vibration_wear_gain)
        rise = s.temperature_rise_busy_c * hardest + s.temperature_rise_wear_c
        ambient = s.temperature_ambient_c
        cur = max(s.current_idle_a, s.current_busy_a * hardest * (1 + s.current_wear_gain))
        queue: tuple[str, float, float, float | None]
        if st.buffer_capacity_parts is None:
            queue = ("parts", 0.0, backlog, _ONE_UNIT)
        else:
            queue = ("parts", 0.0, float(st.buffer_capacity_parts), None)
        ranges = {
            "state": ("code", 0.0, float(len(State) - 1), None),
            "setup_variant": ("variant, -1 none", -1.0, float(len(params.variants) - 1), None),
            "queue_parts": queue,
            "speed_ratio": ("ratio", m.speed_min_ratio, m.speed_max_ratio, None),
            "vibration_mm_s": ("mm/s", 0.0, s.range_headroom * vib, None),
            # the band [ambient, ambient + rise] the true reading occupies, widened by the headroom both ways
            "bearing_temp_c": (
                "degC",
                ambient - (s.range_headroom - 1) * rise,
                ambient + s.range_headroom * rise,
                None,
            ),
            "motor_current_a": ("A", 0.0, s.range_headroom * cur, None),
            "since_maintenance_h": ("h", 0.0, _life_h(m, min(loads)), _DAY_H),
        }
        for name in STATION_SENSORS:
            unit, low, high, ref = ranges[name]
            dropouts = STATION_SENSORS.index(name) in _PHYSICAL
            specs.append(
                SensorSpec(f"{st.name}.{name}", unit, low, high, station=i, dropouts=dropouts, log_reference=ref)
            )
    in_process = sum(st.buffer_capacity_parts or 0 for st in params.stations) + len(params.stations)
    sup = params.supply
    # the reorder rule's highest stock (or the initial stock) plus one largest order of a policy
    stock_high = (
        max(sup.initial_stock_units, sup.reorder_point_units + sup.order_quantity_units) + sup.max_order_units
        if sup
        else 0.0
    )
    price_high, price_ref = _price_range(params.grid)
    line_ranges = {
        "wip_parts": ("parts", 0.0, backlog + in_process, _ONE_UNIT),
        "stock_units": ("units", 0.0, stock_high, None),
        "on_order_units": ("units", 0.0, stock_high, None),
        "price_per_kwh": ("currency/kWh", 0.0, price_high, price_ref),
        "carbon_kg_per_kwh": ("kg/kWh", 0.0, max(params.grid.carbon_kg_per_kwh), None),
    }
    for name in LINE_SENSORS:
        unit, low, high, ref = line_ranges[name]
        specs.append(SensorSpec(f"{LINE_PREFIX}.{name}", unit, low, high, log_reference=ref))
    return tuple(specs)


def _backlog_high(params: LineParams) -> float:
    """Range top of an unbounded count, parts: the orders of `backlog_range_h` hours, or the job set."""
    arrivals = params.demand.arrival_rate_per_h * params.backlog_range_h
    return max(arrivals, float(len(params.demand.jobs)), 1.0)


def _life_h(m: MachineParams, lightest_load: float) -> float:
    """Range top of hours since maintenance: busy hours from new to zero health at the gentlest use."""
    wear_per_h = m.wear_per_busy_h * lightest_load * m.speed_min_ratio**m.wear_speed_exponent
    return 1.0 / wear_per_h if wear_per_h > 0 else _YEAR_H


def _price_range(g: GridParams) -> tuple[float, float | None]:
    """Range top of the price and its log reference (the cheapest positive tariff price)."""
    spike = g.spike_factor if g.spike_rate_per_day > 0 else 1.0
    prices = [p.price_per_kwh for p in g.tariff]
    high = max(prices) * spike * g.price_range_factor
    positive_prices = [p for p in prices if p > 0]
    return high, (min(positive_prices) if positive_prices else None)


class SensorBank:
    """Samples a plant's instruments; keeps each sample until its sensor's next sample instant."""

    def __init__(self, plant: Plant) -> None:
        self._plant = plant
        n = len(plant.stations)
        self._gen = np.random.default_rng(plant.sensor_seed)
        sp = [s.m.sensors for s in plant.stations]
        self._period = np.repeat([p.sample_period_s for p in sp], 3)
        self._phase = self._gen.random(3 * n) * self._period
        self._noise = np.repeat([p.noise_std_ratio for p in sp], 3)
        self._drift_std = np.repeat([p.drift_std_per_sqrt_h for p in sp], 3)
        self._dropout = np.repeat([p.dropout_probability for p in sp], 3)
        self._drift = np.zeros(3 * n)
        self._last = np.full(3 * n, -1.0)
        self._value = np.zeros(3 * n)
        self._stride = len(STATION_SENSORS)
        size = self._stride * n + len(LINE_SENSORS)
        idx = np.arange(n)[:, None] * self._stride + np.array(_PHYSICAL)[None, :]
        self._physical_idx = idx.ravel()
        self._size = size
        self._next_sample_s = 0.0
        self._normals = np.empty((2, 0))
        self._uniforms = np.empty(0)
        self._pool_at = _POOL  # empty: the first sample draws a block
        self._ideal = not (self._noise.any() or self._drift_std.any() or self._dropout.any())  # exact instruments

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (values, stamps) for the current clock, in `sensor_specs` order."""
        plant = self._plant
        now = plant.env.now
        if now >= self._next_sample_s:
            self._resample(now)
        row: list[float] = []
        for st in plant.stations:
            setup = -1.0 if st.last_variant is None else st.last_variant
            row += (
                st.state,
                setup,
                len(st.queue),
                st.speed_setpoint,
                0.0,
                0.0,
                0.0,
                (now - st.last_maintenance_s) / 3600.0,
            )
        supply = plant.supply
        grid = plant.grid
        if supply is None:
            row += (plant.wip, 0.0, 0.0, grid.price_per_kwh, grid.carbon_kg_per_kwh)
        else:
            row += (plant.wip, supply.stock_units, supply.on_order_units, grid.price_per_kwh, grid.carbon_kg_per_kwh)
        values = np.array(row)
        values[self._physical_idx] = self._value
        stamps = np.full(self._size, now)
        stamps[self._physical_idx] = self._last
        return values, stamps

    def _resample(self, now: float) -> None:
        """Take the samples due since the last read (each sensor keeps only its latest)."""
        started = now >= self._phase
        ts = np.where(started, self._phase + np.floor((now - self._phase) / self._period) * self._period, 0.0)
        self._next_sample_s = float(np.where(started, ts + self._period, self._phase).min())
        new = ts > self._last
        n = int(np.count_nonzero(new))
        if n == 0:
            return
        truth: list[float] = []
        for st in self._plant.stations:
            truth += _true_values(st, now)
        if n < len(new):
            self._sample(np.array(truth)[new], ts[new], new, n)
        else:
            self._sample(np.array(truth), ts, slice(None), n)

    def _sample(self, truth: np.ndarray, ts: np.ndarray, which: np.ndarray | slice, n: int) -> None:
        """Record `n` new samples of the true values `truth` taken at `ts` for sensors `which`."""
        previous = self._last[which]
        self._last[which] = ts
        if self._ideal:
            self._value[which] = truth
            return
        z_drift, z_noise, u = self._draws(n)
        elapsed_h = (ts - np.maximum(previous, 0.0)) / 3600.0
        drift = self._drift[which] + z_drift * self._drift_std[which] * np.sqrt(elapsed_h)
        self._drift[which] = drift
        noisy = truth * (1.0 + drift) * (1.0 + z_noise * self._noise[which])
        dropped = u < self._dropout[which]
        self._value[which] = np.where(dropped, np.nan, np.maximum(noisy, 0.0))

    def _draws(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Two standard normals and a uniform for each of `n` samples, from blocks drawn ahead."""
        if self._pool_at + n > _POOL:
            self._normals = self._gen.standard_normal((2, _POOL))
            self._uniforms = self._gen.random(_POOL)
            self._pool_at = 0
        i = self._pool_at
        self._pool_at += n
        return self._normals[0, i : i + n], self._normals[1, i : i + n], self._uniforms[i : i + n]


def _true_values(st: Station, now: float) -> tuple[float, float, float]:
    """True vibration RMS (mm/s), bearing temperature (degC) and motor current (A) of a station."""
    s = st.m.sensors
    wear = 1.0 - st.health
    if st.state is _BUSY:
        vib = s.vibration_idle_mm_s + s.vibration_busy_mm_s * st.speed * st.load * (1 + s.vibration_wear_gain * wear**2)
        cur = s.current_busy_a * st.speed * st.load * (1 + s.current_wear_gain * wear)
    elif st.state in RUNNING_STATES:  # powered and running, not loaded
        vib = s.vibration_idle_mm_s
        cur = s.current_idle_a
    else:
        vib = 0.0
        cur = 0.0
    return vib, st.temperature_at(now), cur
