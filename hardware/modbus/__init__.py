"""Modbus TCP: register maps, their codec and images, TLS, the `ModbusLine` client and the virtual PLC."""

from hardware.modbus.client import ModbusLine
from hardware.modbus.codec import Encoding, RegisterType, WordOrder
from hardware.modbus.errors import (
    AnotherController,
    BadFrame,
    ClockWentBack,
    CommandNotAccepted,
    CommandNotSent,
    CountersWentBack,
    IncompatiblePlc,
    LeverLocal,
    LineRestarted,
    ModbusDisconnected,
    ModbusException,
    ModbusLineError,
    ModbusTimeout,
    StaleData,
)
from hardware.modbus.image import CommandBlock, CommandImage, InputImage, PlcFrame, PlcStatus
from hardware.modbus.map_checks import MAX_SETPOINT_STEP
from hardware.modbus.maps import SETPOINT_LEVERS, default_map, load_map, map_from_mapping, setpoint_spec, validate
from hardware.modbus.plc import VirtualPLC
from hardware.modbus.plc_faults import Fault, FaultKind
from hardware.modbus.regmap import (
    LEVER_BITS,
    Block,
    MapError,
    Register,
    RegisterMap,
    Role,
    StatusBit,
    Table,
)
from hardware.modbus.tls import TlsFiles, client_context, make_certs, server_context

__all__ = [
    "LEVER_BITS",
    "MAX_SETPOINT_STEP",
    "SETPOINT_LEVERS",
    "AnotherController",
    "BadFrame",
    "Block",
    "ClockWentBack",
    "CommandBlock",
    "CommandImage",
    "CommandNotAccepted",
    "CommandNotSent",
    "CountersWentBack",
    "Encoding",
    "Fault",
    "FaultKind",
    "IncompatiblePlc",
    "InputImage",
    "LeverLocal",
    "LineRestarted",
    "MapError",
    "ModbusDisconnected",
    "ModbusException",
    "ModbusLine",
    "ModbusLineError",
    "ModbusTimeout",
    "PlcFrame",
    "PlcStatus",
    "Register",
    "RegisterMap",
    "RegisterType",
    "Role",
    "StaleData",
    "StatusBit",
    "Table",
    "TlsFiles",
    "VirtualPLC",
    "WordOrder",
    "client_context",
    "default_map",
    "load_map",
    "make_certs",
    "map_from_mapping",
    "server_context",
    "setpoint_spec",
    "validate",
]
