"""The exact increase of a Prometheus counter, folded sample by sample.

Shared by the tenancy_usage filter (on the controller) and the tenancy_usage_samples
module (on each host, next to its Prometheus), so a usage report is counted one way
whether its samples arrive in one answer or in many chunks of a month's range.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence


def change_points(samples: Iterable[tuple[float, float]], points: list[tuple[float, float]] | None = None):
    """A marker series (a process's start time) kept only where its value changes, in time
    order: a month of 5 s samples of one gateway's start time is a handful of points.
    Extends ``points`` (fed chunk after chunk) and returns it."""
    points = [] if points is None else points
    for time, value in samples:
        time, value = float(time), float(value)
        if points and time <= points[-1][0]:
            continue
        if not points or value != points[-1][1]:
            points.append((time, value))
    return points


class CounterFold:
    """One counter series' exact increase after ``start``, fed (time, value) samples in
    time order, in as many pieces as the caller likes.

    The value of the last sample at or before ``start`` is the baseline; a series with no
    sample there (a tenant added, or a label value first seen, inside the range) starts
    from 0. A value lower than the one before is a reset (the engine restarted): the
    counter began again at 0, so the whole new value is new usage. With ``restarts`` (the
    start time of the process that keeps the counter, as change points), a new process
    is a reset even when its counter has climbed past the old value by its first scrape,
    and a sample from an older process than one already seen is skipped. Unlike PromQL's
    increase(), nothing is extrapolated to the range's edges. A sample not later than the
    last one fed (chunks that share an edge) is skipped.

    ``running`` keeps the running total at the last sample of each of ``points`` equal
    stretches of the range, so a month of 5 s samples (half a million) costs a few
    hundred points of memory and output, and a chart of them is exact at each point.
    """

    def __init__(
        self,
        start: float,
        end: float | None = None,
        points: int = 1000,
        restarts: Sequence[tuple[float, float]] = (),
    ) -> None:
        self.start = float(start)
        self.end = None if end is None else float(end)
        self.points = max(1, int(points))
        self.previous = 0.0
        self.total = 0.0
        self.last_time: float | None = None
        self._buckets: dict[int, tuple[float, float]] = {}
        # The counter's process start time, as change points (see feed).
        self._restart_times = [t for t, _ in restarts]
        self._restart_values = [v for _, v in restarts]
        self._worker: float | None = None

    def feed(self, samples: Iterable[tuple[float, float]]) -> None:
        for time, value in samples:
            time, value = float(time), float(value)
            if self.last_time is not None and time <= self.last_time:
                continue
            if self.end is not None and time > self.end:
                continue
            worker = self._worker_at(time)
            if worker is not None and self._worker is not None:
                if worker < self._worker:
                    # A scrape answered by a worker older than one already seen (HAProxy's
                    # old worker finishing after a reload): not this counter's present.
                    continue
                if worker > self._worker:
                    # A new process (a gateway reload): its counter began at 0, even when
                    # it has already climbed past the old one's value by this scrape.
                    self.previous = 0.0
            if worker is not None:
                self._worker = worker
            self.last_time = time
            if time <= self.start:
                self.previous = value
                continue
            grew = value - self.previous if value >= self.previous else value
            self.previous = value
            if grew:
                self.total += grew
                self._buckets[self._bucket(time)] = (time, self.total)

    def _worker_at(self, time: float) -> float | None:
        """The process start time in force at ``time`` (the marker's last change at or before it)."""
        index = bisect.bisect_right(self._restart_times, time) - 1
        return self._restart_values[index] if index >= 0 else None

    def _bucket(self, time: float) -> int:
        if self.end is None or self.end <= self.start:
            return len(self._buckets)
        width = (self.end - self.start) / self.points
        return min(int((time - self.start) / width), self.points - 1)

    @property
    def running(self) -> list[tuple[float, float]]:
        """(time, running total) where it grew, at most ``points`` of them, in time order."""
        return [self._buckets[key] for key in sorted(self._buckets)]
