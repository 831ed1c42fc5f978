"""A job: one part travelling its variant's route through the twin."""

from __future__ import annotations

from hardware.twin.params import LineParams


class Job:
    """One part travelling its variant's route; `step` indexes the next operation."""

    __slots__ = ("arrived_s", "due_s", "id", "load", "material", "route", "step", "times", "variant", "weight")

    def __init__(
        self,
        job_id: int,
        variant: int,
        params: LineParams,
        route: tuple[int, ...],
        arrived_s: float,
        due_s: float,
        weight: float,
    ) -> None:
        v = params.variants[variant]
        self.id = job_id
        self.variant = variant
        self.route = route
        self.times = v.processing_time_s
        self.load = v.load
        self.material = v.material_units
        self.step = 0
        self.arrived_s = arrived_s
        self.due_s = due_s
        self.weight = weight
