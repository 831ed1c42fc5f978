"""The SimPy digital twin of a production line; imports only simpy, numpy, yaml and the interface."""

from hardware.twin.line import TwinLine
from hardware.twin.params import LineParams
from hardware.twin.schema import LineDefinitionError
from hardware.twin.station import State

__all__ = ["LineDefinitionError", "LineParams", "State", "TwinLine"]
