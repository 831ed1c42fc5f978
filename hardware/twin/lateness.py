"""Lateness bookkeeping: total (and weighted) tardiness of jobs, finished or still open.

Reading the totals costs O(log n) per job that became late since the last read, not a pass over
every open job: open jobs wait in a heap by due date and move to a running sum once late.
"""

from __future__ import annotations

import heapq


class LatenessBook:
    """Lateness of departed jobs plus the lateness open jobs have accrued so far, s."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, float]] = []  # (due s, job id, weight) of open jobs not yet late
        self._late: dict[int, tuple[float, float]] = {}  # open late jobs: id -> (due s, weight)
        self._late_due_sum = 0.0
        self._late_weight = 0.0
        self._late_weighted_due_sum = 0.0
        self._closed = set[int]()  # departed jobs whose heap entry is still waiting to be dropped
        self.done_s = 0.0  # final lateness of departed jobs
        self.done_weighted_s = 0.0
        self.tardy_jobs = 0  # departed late

    def open(self, job_id: int, due_s: float, weight: float) -> None:
        """Start tracking a released job."""
        heapq.heappush(self._due, (due_s, job_id, weight))

    def close(self, job_id: int, due_s: float, weight: float, now: float) -> None:
        """A job departed at `now`: fix its lateness."""
        if job_id in self._late:
            del self._late[job_id]
            self._late_due_sum -= due_s
            self._late_weight -= weight
            self._late_weighted_due_sum -= weight * due_s
            if not self._late:  # start the running sums afresh so rounding cannot accumulate
                self._late_due_sum = self._late_weight = self._late_weighted_due_sum = 0.0
        else:
            self._closed.add(job_id)
        late = now - due_s
        if late > 0:
            self.done_s += late
            self.done_weighted_s += weight * late
            self.tardy_jobs += 1

    def totals(self, now: float) -> tuple[float, float]:
        """Lateness summed over departed and open jobs as of `now`: (plain, weighted), s."""
        heap = self._due
        while heap and heap[0][0] < now:
            due, job_id, weight = heapq.heappop(heap)
            if job_id in self._closed:
                self._closed.discard(job_id)
                continue
            self._late[job_id] = (due, weight)
            self._late_due_sum += due
            self._late_weight += weight
            self._late_weighted_due_sum += weight * due
        n = len(self._late)
        plain = self.done_s + n * now - self._late_due_sum
        weighted = self.done_weighted_s + self._late_weight * now - self._late_weighted_due_sum
        return plain, weighted
