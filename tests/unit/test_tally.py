"""The one merge of tallies: every field survives a merge and the wire, whatever its kind."""

from __future__ import annotations

import pickle
from collections import Counter
from dataclasses import fields

import numpy as np

from infbench.recorder.hdr import new_histogram, record_values
from infbench.recorder.tally import METRICS, STREAM_METRICS, PhaseTally
from infbench.results.percentile import value_at_percentile

HIGHEST_US = 10_000_000


def _tally(values: dict[str, list[int]], **counts: object) -> PhaseTally:
    tally = PhaseTally("steady", HIGHEST_US, streamed=True)
    for metric, micros in values.items():
        record_values(tally.histograms[metric], np.array(micros, dtype=np.int64))
    for name, value in counts.items():
        setattr(tally, name, value)
    return tally


def _two() -> tuple[PhaseTally, PhaseTally]:
    one = _tally(
        {"latency": [1_000, 2_000], "ttft": [100, 200], "tpot": [10], "itl": [5, 6, 7]},
        sent=2, completed=2, ok=2, ok_within_slo=1, bytes_in=30, output_tokens=20,
        input_tokens=8, service_ns=3_000_000, errors=Counter(), statuses=Counter({200: 2}),
        token_sources=Counter({"usage": 2}), output_tokens_by_second=Counter({0: 12, 1: 8}),
    )  # fmt: skip
    two = _tally(
        {"latency": [3_000, 4_000], "ttft": [300, 400], "tpot": [30], "itl": [8]},
        sent=3, completed=3, ok=2, dropped=1, out_of_range=1, output_tokens=10,
        errors=Counter({"timeout": 1}), statuses=Counter({200: 2, 504: 1}),
        token_sources=Counter({"chunks": 2}), output_tokens_by_second=Counter({1: 10}),
    )  # fmt: skip
    return one, two


def test_counts_and_sources_add_up() -> None:
    merged = PhaseTally.merged(_two())
    assert (merged.sent, merged.completed, merged.ok, merged.dropped) == (5, 5, 4, 1)
    assert (merged.ok_within_slo, merged.out_of_range, merged.bytes_in) == (1, 1, 30)
    assert (merged.input_tokens, merged.output_tokens, merged.service_ns) == (8, 30, 3_000_000)
    assert merged.errors == {"timeout": 1} and merged.statuses == {200: 4, 504: 1}
    assert merged.token_sources == {"usage": 2, "chunks": 2}
    assert merged.streamed


def test_histograms_merge_exactly_stream_figures_included() -> None:
    merged = PhaseTally.merged(_two())
    hists = merged.histograms
    assert set(hists) == set(METRICS + STREAM_METRICS)
    assert hists["latency"].get_total_count() == 4 and hists["itl"].get_total_count() == 4
    # rank ⌈p·N⌉ of the four values 100, 200, 300, 400 (exact at 3 significant digits)
    assert [value_at_percentile(hists["ttft"], p) for p in (25, 50, 75, 100)] == [
        100, 200, 300, 400,
    ]  # fmt: skip
    assert value_at_percentile(hists["tpot"], 50) == 10
    assert value_at_percentile(hists["tpot"], 100) == 30
    assert hists["itl"].get_max_value() == 8


def test_a_peak_comes_from_the_merged_seconds() -> None:
    """Side by side, second 1 holds 8 + 10 tokens: the peak is 18, not 12 + 10 summed per
    part nor the larger of the parts' own peaks (12)."""
    one, two = _two()
    assert PhaseTally.merged([one, two]).peak_output_tokens_per_s == 18
    # one after the other (repetitions), the seconds do not overlap: the larger peak
    after = PhaseTally.merged([one, two], after_s=[0, 5])
    assert after.peak_output_tokens_per_s == 12
    assert after.output_tokens_by_second == {0: 12, 1: 8, 6: 10}


def test_every_field_survives_the_wire() -> None:
    one, _ = _two()
    back = PhaseTally.from_wire(pickle.loads(pickle.dumps(one.to_wire())))
    for f in fields(PhaseTally):
        if f.name != "histograms":
            assert getattr(back, f.name) == getattr(one, f.name), f.name
    for metric, hist in one.histograms.items():
        assert back.histograms[metric].get_total_count() == hist.get_total_count()
        assert value_at_percentile(back.histograms[metric], 99) == value_at_percentile(hist, 99)


def test_a_histogram_only_one_part_has_is_kept() -> None:
    """A histogram added to the tally later (a new figure) needs no step of its own."""
    one, two = _two()
    one.histograms["loop_lag"] = new_histogram(HIGHEST_US)
    record_values(one.histograms["loop_lag"], np.array([42], dtype=np.int64))
    merged = PhaseTally.merged([two, one])
    assert merged.histograms["loop_lag"].get_total_count() == 1
    back = PhaseTally.from_wire(merged.to_wire())
    assert value_at_percentile(back.histograms["loop_lag"], 50) == 42
