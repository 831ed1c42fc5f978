"""The errors of a Modbus line: one base type, a subclass per way a PLC link can fail.

Every message starts with where it happened: `host:port device <id> <table> <first>-<last>`, e.g.
`127.0.0.1:5020 device 1 input 0-124: no answer within 0.5 s`. No pymodbus exception or exception
response leaves `hardware.modbus` raw: each becomes one of these.
"""

from __future__ import annotations

from hardware.modbus.regmap import StatusBit


class ModbusLineError(RuntimeError):
    """A Modbus line failed to read or write; the message names the endpoint and the registers."""


class ModbusTimeout(ModbusLineError):
    """No (valid) answer within the timeout, after the allowed re-reads."""


class ModbusDisconnected(ModbusLineError):
    """No connection: it broke, or it cannot be (re)established now."""


class ModbusException(ModbusLineError):
    """The PLC answered a request with a Modbus exception response.

    Attributes:
        code: the exception code (2 = illegal data address, 4 = device failure, ...).
        code_name: its name, e.g. `ILLEGAL_ADDRESS`.
    """

    def __init__(self, message: str, code: int, code_name: str) -> None:
        super().__init__(message)
        self.code = code
        self.code_name = code_name


class BadFrame(ModbusLineError):
    """A frame that cannot be trusted as read: torn on every re-read, or a status or counter missing."""


class StaleData(ModbusLineError):
    """The PLC's data stopped moving: heartbeat frozen, line clock stopped, or a timestamp went backwards."""


class LineRestarted(StaleData):
    """The PLC's data start again (a restart, a reset): what was counted since the attach is gone; attach afresh."""


class ClockWentBack(LineRestarted):
    """The PLC's timestamp went backwards (a clock set back, a PLC restarted behind)."""


class CountersWentBack(LineRestarted):
    """A cumulative counter went down by more than a wrap of its register explains (counters reset, a restart)."""


class AnotherController(ModbusLineError):
    """The PLC accepted a command this client did not send: another controller writes to the same line.

    The client refuses every read after it until it attaches afresh: two controllers would each undo
    what the other wrote, and the audit log would show setpoints no policy of this run decided.
    """


class IncompatiblePlc(ModbusLineError):
    """The PLC does not run the line the spec describes: another control period, or levers not handed over."""


class CommandNotSent(ModbusLineError):
    """A command refused before any of its registers went out (a setpoint no register carries): the PLC got nothing."""


class LeverLocal(ModbusLineError):
    """A setpoint for a lever the PLC keeps to its own rules now (the operator took it local): not sent, or not taken.

    Attributes:
        echo: the PLC's echo of the block, when it was sent and the lever found local as it arrived (else None).
    """

    def __init__(self, message: str, echo: int | None = None) -> None:
        super().__init__(message)
        self.echo = echo


class CommandNotAccepted(ModbusLineError):
    """The PLC did not echo a command block's sequence number in time; the status bits say why.

    Attributes:
        sequence: the sequence number of the block that was not accepted.
        status: the PLC's status word when the wait ended.
    """

    def __init__(self, message: str, sequence: int, status: StatusBit) -> None:
        super().__init__(message)
        self.sequence = sequence
        self.status = status
