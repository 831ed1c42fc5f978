"""Build a `ModbusLine` for a task from a line definition: the Hydra `hardware=modbus` target."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hardware.interface import Lever
from hardware.modbus.client import ModbusLine
from hardware.modbus.map_checks import MAX_SETPOINT_STEP
from hardware.modbus.maps import default_map, line_spec, load_map, setpoint_spec
from hardware.modbus.tls import TlsFiles


def modbus_line(
    definition: Mapping[str, Any],
    levers: Iterable[Lever | str],
    control_period_s: float | None,
    host: str = "127.0.0.1",
    port: int = 502,
    map: str | Path | None = None,
    tls: Mapping[str, str] | None = None,
    device_id: int = 1,
    reconnect_backoff_s: Iterable[float] = (0.05, 2.0),
    max_setpoint_step: float = MAX_SETPOINT_STEP,
    **options: Any,
) -> ModbusLine:
    """A `ModbusLine` that hands a task `levers` on the line `definition` describes.

    The task's spec is the line's with exactly those levers and `control_period_s` (None: the
    definition's); the register map is `map` (a YAML file validated against the line, its continuous
    setpoints at a register step of at most `max_setpoint_step` of their range) or the line's default
    map. `tls` holds the client's `cert`, `key` and the `ca` that signed the PLC. `options`
    go to `ModbusLine` (timeouts, retries). No network traffic happens until `reset`.

    Raises:
        MapError: the map file is unreadable or does not fit the line.
        ValueError: the map does not carry a lever the task needs, `tls` is not a mapping of `cert`,
            `key` and `ca`, or `reconnect_backoff_s` is not two numbers.
    """
    backoff = list(reconnect_backoff_s) if isinstance(reconnect_backoff_s, Iterable) else [reconnect_backoff_s]
    if len(backoff) != 2 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in backoff):
        raise ValueError(f"reconnect_backoff_s: expected [first, longest] in s, got {reconnect_backoff_s!r}")
    if tls is not None and not (isinstance(tls, Mapping) and {"cert", "key", "ca"} <= set(tls)):
        raise ValueError(f"tls: expected a mapping with the client's cert, key and the ca, got {tls!r}")
    spec = line_spec(definition, levers, control_period_s)
    full = setpoint_spec(definition, spec.control_period_s)
    rmap = load_map(map, full, max_setpoint_step) if map is not None else default_map(full, device_id=device_id)
    files = None if tls is None else TlsFiles(Path(tls["cert"]), Path(tls["key"]), Path(tls["ca"]))
    return ModbusLine(spec, rmap, host, port, tls=files, reconnect_backoff_s=(backoff[0], backoff[1]), **options)
