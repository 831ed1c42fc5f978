"""The hardware layer: the `Line` interface and its back ends (the twin; Modbus later)."""

from hardware.interface import (
    ActuatorSpec,
    Command,
    Decision,
    DecisionKind,
    Dispatch,
    Frame,
    Jobs,
    JobSpec,
    JobStatus,
    Kpis,
    Lever,
    Line,
    LineSpec,
    SensorSpec,
    StationMode,
    StationState,
)

__all__ = [
    "ActuatorSpec",
    "Command",
    "Decision",
    "DecisionKind",
    "Dispatch",
    "Frame",
    "JobSpec",
    "JobStatus",
    "Jobs",
    "Kpis",
    "Lever",
    "Line",
    "LineSpec",
    "SensorSpec",
    "StationMode",
    "StationState",
]
