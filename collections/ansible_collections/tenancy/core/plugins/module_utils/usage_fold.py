"""The exact increase of a Prometheus counter, folded sample by sample.

Shared by the tenancy_usage filter (on the controller) and the tenancy_usage_samples
module (on each host, next to its Prometheus), so a usage report is counted one way
whether its samples arrive in one answer or in many chunks of a month's range.
"""

from __future__ import annotations

from collections.abc import Iterable


class CounterFold:
    """One counter series' exact increase after ``start``, fed (time, value) samples in
    time order, in as many pieces as the caller likes.

    The value of the last sample at or before ``start`` is the baseline; a series with no
    sample there (a tenant added, or a label value first seen, inside the range) starts
    from 0. A value lower than the one before is a reset (the engine restarted): the
    counter began again at 0, so the whole new value is new usage. Unlike PromQL's
    increase(), nothing is extrapolated to the range's edges. A sample not later than the
    last one fed (chunks that share an edge) is skipped.

    ``running`` keeps the running total at the last sample of each of ``points`` equal
    stretches of the range, so a month of 5 s samples (half a million) costs a few
    hundred points of memory and output, and a chart of them is exact at each point.
    """

    def __init__(self, start: float, end: float | None = None, points: int = 1000) -> None:
        self.start = float(start)
        self.end = None if end is None else float(end)
        self.points = max(1, int(points))
        self.previous = 0.0
        self.total = 0.0
        self.last_time: float | None = None
        self._buckets: dict[int, tuple[float, float]] = {}

    def feed(self, samples: Iterable[tuple[float, float]]) -> None:
        for time, value in samples:
            time, value = float(time), float(value)
            if self.last_time is not None and time <= self.last_time:
                continue
            if self.end is not None and time > self.end:
                continue
            self.last_time = time
            if time <= self.start:
                self.previous = value
                continue
            grew = value - self.previous if value >= self.previous else value
            self.previous = value
            if grew:
                self.total += grew
                self._buckets[self._bucket(time)] = (time, self.total)

    def _bucket(self, time: float) -> int:
        if self.end is None or self.end <= self.start:
            return len(self._buckets)
        width = (self.end - self.start) / self.points
        return min(int((time - self.start) / width), self.points - 1)

    @property
    def running(self) -> list[tuple[float, float]]:
        """(time, running total) where it grew, at most ``points`` of them, in time order."""
        return [self._buckets[key] for key in sorted(self._buckets)]
