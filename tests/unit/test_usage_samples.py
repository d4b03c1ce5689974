"""The tenancy_usage_samples module folds a range read in chunks to exactly what one
read of the whole range gives, resets and chunk edges included."""

from __future__ import annotations

import bisect
import itertools
import random

import pytest
from tenancy_usage import tenancy_usage
from tenancy_usage_samples import chunks, fold_usage

SERIES = {"requests": "vllm:request_success_total", "prompt_tokens": "vllm:prompt_tokens_total"}


def counter(seed: int, start: float, end: float, step: float = 5.0, resets: tuple[float, ...] = ()):
    """A counter sampled every `step` seconds that restarts at each time in `resets`."""
    rng, value, samples, t = random.Random(seed), 0.0, [], start
    while t <= end:
        if any(t - step < r <= t for r in resets):
            value = 0.0
        value += rng.choice([0, 0, 1, 3, 17])
        samples.append((t, value))
        t += step
    return samples


def fake_prometheus(stored: dict[str, list[tuple[dict, list[tuple[float, float]]]]]):
    """An instant query of `selector[Nms]` at `at`: the samples in [at - N, at] (Prometheus 2
    includes the left edge), as Prometheus answers a range vector."""
    sent = []
    times = {selector: [[t for t, _ in samples] for _, samples in series] for selector, series in stored.items()}

    def query(promql: str, at: float) -> list[dict]:
        selector, window = promql[:-1].split("[")
        left = at - int(window.removesuffix("ms")) / 1000
        sent.append(promql)
        answer = []
        for (labels, samples), stamps in zip(stored[selector], times[selector], strict=True):
            picked = samples[bisect.bisect_left(stamps, left) : bisect.bisect_right(stamps, at)]
            if picked:
                answer.append({"metric": labels, "values": [[t, str(v)] for t, v in picked]})
        return answer

    return query, sent


START, END = 1_000_000.0, 1_000_000.0 + 3 * 86400


def stored_counters():
    return {
        "vllm:request_success_total": [
            ({"tenant": "a", "host": "h1"}, counter(1, START - 600, END, resets=(START + 7200, START + 21600 + 2.5))),
            ({"tenant": "b", "host": "h1"}, counter(2, START + 3600, END)),  # added inside the range
        ],
        "vllm:prompt_tokens_total": [
            ({"tenant": "a", "host": "h1"}, counter(3, START - 600, END, resets=(START + 21600,))),
        ],
    }


@pytest.mark.parametrize("chunk", [600, 3600, 21600, 86400 * 7])
def test_chunks_fold_to_what_one_read_of_the_range_gives(chunk):
    stored = stored_counters()
    query, _ = fake_prometheus(stored)
    whole = [
        {"column": column, "result": query(f"{selector}[{int((END - START + 300) * 1000)}ms]", END)}
        for column, selector in SERIES.items()
    ]
    folded, sent = fold_usage(query, SERIES, START, END, 300, chunk, 1000)
    assert sent == len(SERIES) * len(chunks(START, END, 300, chunk))
    assert tenancy_usage(folded, START, END)["rows"] == tenancy_usage(whole, START, END)["rows"]


def test_a_reset_exactly_at_a_chunk_edge_is_counted_once():
    edge = START - 300 + 3600  # the end of the first 1 h chunk
    samples = [(edge - 5, 100.0), (edge, 2.0), (edge + 5, 4.0)]
    query, _ = fake_prometheus({"c": [({"tenant": "a", "host": "h"}, [(START - 10, 90.0), *samples])]})
    (entry,), _ = fold_usage(query, {"requests": "c"}, START, END, 300, 3600, 1000)
    assert entry["total"] == (100 - 90) + 2 + 2


def test_a_month_keeps_a_bounded_number_of_chart_points():
    samples = [(START + i * 5.0, float(i)) for i in range(1, 30 * 17280, 7)]
    query, _ = fake_prometheus({"c": [({"tenant": "a", "host": "h"}, samples)]})
    (entry,), _ = fold_usage(query, {"requests": "c"}, START, START + 30 * 86400, 300, 21600, 1000)
    assert len(entry["running"]) <= 1000
    assert entry["running"][-1][1] == entry["total"] == samples[-1][1]


def test_the_chunks_cover_the_range_and_its_lookback_without_gaps():
    pieces = chunks(100.0, 1000.0, 50.0, 300.0)
    assert pieces[0][0] == 50.0 and pieces[-1][1] == 1000.0
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))
    assert all(right - left <= 300.0 for left, right in pieces)


def test_the_module_folds_gateway_columns_with_the_workers_start_time_across_chunks():
    """A reload in the second chunk whose new count passes the old by the next scrape."""
    marker = 'haproxy_process_start_time_seconds{job="tenancy_gateway"}'
    labels = {"tenant": "a", "host": "h"}
    counter = [(START - 10, 30.0), (START + 5, 40.0), (START + 3605, 55.0), (START + 3610, 60.0)]
    starts = [(START - 10, 1000.0), (START + 5, 1000.0), (START + 3605, 1007.0), (START + 3610, 1007.0)]
    query, _ = fake_prometheus({"c": [(labels, counter)], marker: [(labels, starts)]})
    (entry,), _ = fold_usage(query, {"unauthorized": "c"}, START, END, 300, 3600, 1000, marker, {"unauthorized"})
    assert entry["total"] == 10 + 55 + 5
    (unmarked,), _ = fold_usage(query, {"unauthorized": "c"}, START, END, 300, 3600, 1000)
    assert unmarked["total"] == 30, "the planted break: without the marker the reload is missed"
