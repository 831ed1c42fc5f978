"""Modbus TCP: register maps, their codec and images, TLS, the `ModbusLine` client and the virtual PLC."""

from hardware.modbus.codec import Encoding, RegisterType, WordOrder
from hardware.modbus.image import CommandBlock, CommandImage, InputImage, PlcFrame, PlcStatus
from hardware.modbus.maps import default_map, load_map, map_from_mapping, validate
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
    "Block",
    "CommandBlock",
    "CommandImage",
    "Encoding",
    "InputImage",
    "MapError",
    "PlcFrame",
    "PlcStatus",
    "Register",
    "RegisterMap",
    "RegisterType",
    "Role",
    "StatusBit",
    "Table",
    "TlsFiles",
    "WordOrder",
    "client_context",
    "default_map",
    "load_map",
    "make_certs",
    "map_from_mapping",
    "server_context",
    "validate",
]
