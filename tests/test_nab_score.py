"""The NAB scorer: hand-computed window arithmetic, and the published reference scores."""
import math
import os
import random

import pytest

from backtest import nab_score
from backtest.nab_score import score_detections, scaled_sigmoid, sweep, row_values

NAB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.pardir, "shared", "nab")
STANDARD = {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11}
LOW_FN = {"tpWeight": 1.0, "fnWeight": 2.0, "fpWeight": 0.11}

# 100 rows -> probation = 15 rows; one window over rows 40..49 (10 rows).
N, WINDOWS = 100, [(40, 49)]


def raw(detections, cost=STANDARD):
    return score_detections(N, WINDOWS, detections, cost)


def test_probation_is_15_percent_capped_at_750():
    assert nab_score.probation_rows(100) == 15
    assert nab_score.probation_rows(4032) == 604
    assert nab_score.probation_rows(22695) == 750


def test_detection_at_window_start_earns_exactly_tp_weight():
    assert raw([40]) == pytest.approx((1.0, 1, 0, 0))


def test_only_earliest_detection_in_window_counts():
    assert raw([45, 40, 49]) == pytest.approx((1.0, 1, 0, 0))


def test_detection_at_window_end_earns_little():
    # x = -(49 - 49 + 1) / 10 = -0.1; S(-0.1) = 2/(1+e^-0.5) - 1 = 0.244919; / S(-1) = 0.986614
    assert raw([49])[0] == pytest.approx(0.244919 / 0.986614, abs=1e-6)


def test_missed_window_costs_fn_weight():
    assert raw([]) == pytest.approx((-1.0, 0, 0, 1))
    assert raw([], LOW_FN)[0] == pytest.approx(-2.0)


def test_false_positive_right_after_window():
    # Row 50, one row past the window's right edge (49), window width 10:
    # x = |50 - 49| / (10 - 1) = 1/9; S(1/9) = 2/(1+e^(5/9)) - 1 = 2/2.742909 - 1 = -0.270847
    # raw = -fnWeight (window missed) + fpWeight * S = -1 + 0.11 * -0.270847 = -1.029793
    assert raw([50]) == pytest.approx((-1.029793, 0, 1, 1), abs=1e-6)


def test_false_positive_far_after_window_and_before_any_window():
    # 3 widths past the window (x > 3) and before the first window: full -fpWeight each.
    assert raw([40, 90]) == pytest.approx((1.0 - 0.11, 1, 1, 0))
    assert raw([40, 20]) == pytest.approx((1.0 - 0.11, 1, 1, 0))


def test_probationary_rows_are_ignored():
    assert raw([40, 3, 14]) == pytest.approx((1.0, 1, 0, 0))


def test_scaled_sigmoid_shape():
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(-1.0) == pytest.approx(0.986614, abs=1e-6)
    assert scaled_sigmoid(3.5) == -1.0


def test_sweep_matches_direct_scoring_at_every_threshold():
    """The one-pass sweep over two files equals rescoring them at each candidate threshold."""
    rng = random.Random(7)
    files = [(N, WINDOWS), (60, [(20, 24), (40, 44)])]
    scores = [[round(rng.random(), 2) for _ in range(n)] for n, _ in files]
    rows, n_windows = [], 0
    for f, ((n, windows), s) in enumerate(zip(files, scores)):
        values = row_values(n, windows)
        n_windows += len(nab_score.scored_windows(values))
        rows += [(sc, None if v[0] is None else (f, v[0]), v[1]) for sc, v in zip(s, values) if v is not None]
    rows.sort(key=lambda r: r[0], reverse=True)
    best = sweep(rows, n_windows, STANDARD)

    def total(threshold):
        return sum(score_detections(n, w, [i for i, sc in enumerate(s) if sc >= threshold], STANDARD)[0]
                   for (n, w), s in zip(files, scores))

    candidates = {sc for s in scores for sc in s} | {math.inf}
    assert best["raw"] == pytest.approx(max(total(t) for t in candidates))
    assert best["raw"] == pytest.approx(total(best["threshold"]))


# Reference table in ../shared/nab/README.md (NAB's own scorer on the 18-file subset).
REFERENCE = {
    "null": {"standard": 0.0, "reward_low_FP_rate": 0.0, "reward_low_FN_rate": 0.0},
    "windowedGaussian": {"standard": 12.1, "reward_low_FP_rate": 4.8, "reward_low_FN_rate": 16.0},
    "numenta": {"standard": 61.3, "reward_low_FP_rate": 54.3, "reward_low_FN_rate": 66.2},
}


@pytest.fixture(scope="module")
def reference_scores():
    if not os.path.isdir(os.path.join(NAB, "reference_results")):
        pytest.skip("shared NAB subset not found at %s" % os.path.normpath(NAB))
    return nab_score.score_results(os.path.join(NAB, "reference_results"), os.path.join(NAB, "labels"),
                                   list(REFERENCE))


@pytest.mark.parametrize("detector,profile", [(d, p) for d in REFERENCE for p in REFERENCE[d]])
def test_reproduces_reference_scores(reference_scores, detector, profile):
    assert reference_scores[detector][profile]["score"] == pytest.approx(REFERENCE[detector][profile], abs=0.1)


def test_cli_prints_table(capsys):
    if not os.path.isdir(os.path.join(NAB, "reference_results")):
        pytest.skip("shared NAB subset not found at %s" % os.path.normpath(NAB))
    nab_score.main(["--results", os.path.join(NAB, "reference_results"), "--labels", os.path.join(NAB, "labels"),
                    "--detector", "numenta"])
    out = capsys.readouterr().out
    assert "numenta" in out and "61.3" in out
