"""The line over Modbus TCP. So far: the register codec both ends of the fieldbus share."""

from hardware.modbus.codec import Encoding, RegisterType, WordOrder

__all__ = ["Encoding", "RegisterType", "WordOrder"]
