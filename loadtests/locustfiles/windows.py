"""Counting events in sliding windows, kept free of Locust imports (importing locust
monkey-patches the whole process with gevent), so unit tests can use it."""

from __future__ import annotations


def window_counts(times: list[float], start: float, end: float, width: float = 60) -> list[int]:
    """Events in every window [s, s + width) with start <= s <= end - width, 1 s apart."""
    counts = []
    s = start
    while s + width <= end:
        counts.append(sum(1 for t in times if s <= t < s + width))
        s += 1
    return counts
