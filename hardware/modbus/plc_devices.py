"""The virtual PLC's Modbus face: which devices and tables it serves, and which function codes it refuses.

Each device id of the register map is one pymodbus `SimDevice` holding its input-register blocks
and, on the window's device, the holding-register command window; every other table and address
answers exception 2. Any other device id answers exception 11 (the target device did not respond),
as a gateway does: pymodbus serves a device id it has no device for as device 0, so device 0 is that
catch-all and a map's own devices are 1-255 (`check_servable`). Coils and discrete inputs do not
exist (exception 2), and the two function codes that write the window other than by FC16 or FC6 are
refused (exception 1).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence

from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData, SimDevice

from hardware.modbus.regmap import Block, RegisterMap

WRITE_FCS = frozenset({5, 6, 15, 16, 22, 23})  # the function codes that write
_BIT_FCS = frozenset({1, 2, 5, 15})  # the PLC has no coils or discrete inputs
_MASK_FCS = frozenset({22, 23})  # mask write, read/write multiple: the window is written by FC16 (FC6: heartbeat)

# pymodbus's SimDevice action: function code, start, address, count, registers, values written (None: a read)
Action = Callable[
    [int, int, int, int, list[int], list[int] | list[bool] | None], Coroutine[None, None, ExcCodes | None]
]


def plc_devices(rmap: RegisterMap, plan: Sequence[Block], action: Action) -> list[SimDevice]:
    """One device per device id of `rmap`, with its input blocks of `plan` and the window; a catch-all for the rest.

    `action` sees every request to the map's devices before pymodbus serves it.
    """
    window = rmap.command_window
    devices = []
    for dev in sorted({r.device_id for r in rmap.registers}):
        inputs = [SimData(b.address, count=b.count, datatype=DataType.REGISTERS) for b in plan if b.device_id == dev]
        holding = [SimData(window.address, count=window.count, datatype=DataType.REGISTERS)]
        nothing = [SimData(0, datatype=DataType.INVALID)]
        tables = (
            [SimData(0, datatype=DataType.BITS)],  # pymodbus wants every table; `refused_function` refuses bits
            [SimData(0, datatype=DataType.BITS)],
            holding if window.device_id == dev else nothing,
            inputs or nothing,
        )
        devices.append(SimDevice(dev, simdata=tables, action=action))
    # any other device id: no such device behind this PLC, whatever register it asks for
    bits, registers = SimData(0, datatype=DataType.BITS), SimData(0, count=0x10000, datatype=DataType.REGISTERS)
    devices.append(SimDevice(0, simdata=([bits], [bits], [registers], [registers]), action=_no_device))
    return devices


def check_servable(rmap: RegisterMap) -> None:
    """Check that the PLC can serve every device id of `rmap` apart from the ids it has no device for.

    A client may address a real PLC as device 0; pymodbus serves device 0 to every id without a
    device of its own, so here it would answer those ids with the map's registers, not exception 11.

    Raises:
        ValueError: an entry on device 0, naming the map and the entry.
    """
    for i, r in enumerate(rmap.registers):
        if r.device_id == 0:
            raise ValueError(
                f"register map {rmap.source}: entry {i} ({r.name!r}, {r.role.value}): the virtual PLC cannot serve "
                "device_id 0 (pymodbus answers every device id it has no device for as device 0, which this PLC "
                "answers with exception 11); give it a device id 1-255"
            )


def refused_function(function_code: int) -> ExcCodes | None:
    """The exception a request of `function_code` gets whatever it addresses; None: it may go on."""
    if function_code in _BIT_FCS:
        return ExcCodes.ILLEGAL_ADDRESS
    if function_code in _MASK_FCS:  # pymodbus lands their writes before it checks the whole request
        return ExcCodes.ILLEGAL_FUNCTION
    return None


async def _no_device(*_: object) -> ExcCodes:
    """The answer to a request for a device id the map does not have: the target device did not respond."""
    return ExcCodes.GATEWAY_NO_RESPONSE
