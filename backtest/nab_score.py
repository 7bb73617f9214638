"""Score detector output the way the Numenta Anomaly Benchmark does.

The project's own implementation of the method in ``../shared/nab/README.md``:
rows are scored after a probationary period; the earliest detection inside a
labelled window earns a reward that shrinks towards the window's end (scaled
sigmoid); a window without detection costs ``fnWeight``; a detection outside
every window costs ``fpWeight`` times a penalty that grows with the distance
from the previous window. One threshold per profile is chosen to maximise the
total over all files, and the total is normalised so that a detector that never
fires scores 0 and one that fires at the start of every window scores 100.

Results layout: ``<results>/<detector>/<category>/<detector>_<name>.csv`` with
columns ``timestamp,value,anomaly_score,label`` (rows in time order); windows
come from ``<labels>/combined_windows.json``, profiles from
``<labels>/profiles.json``.
"""
import argparse
import bisect
import csv
import json
import math
import os
import sys
from datetime import datetime

PROBATION_FRACTION = 0.15
PROBATION_MAX = 750
NEVER = math.inf  # threshold above every score: the detector never fires


def scaled_sigmoid(x):
    """S(x) = 2*sigmoid(-5x) - 1: ~+0.987 at a window's start (x=-1), 0 at x=0, -1 beyond x=3."""
    if x > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


S_START = scaled_sigmoid(-1.0)  # divides TP rewards so a detection at the start earns tpWeight


def probation_rows(n_rows):
    """Leading rows left unscored while a detector learns: 15 % of the file, at most 750."""
    return min(int(math.floor(PROBATION_FRACTION * n_rows)), PROBATION_MAX)


def window_rows(timestamps, windows):
    """Map (start, end) timestamp windows to inclusive row ranges of a time-sorted file.

    Rows are matched by time (first row >= start, last row <= end), so windows whose
    bounds fall between samples still work; windows that cover no row are dropped.
    """
    out = []
    for start, end in windows:
        left = bisect.bisect_left(timestamps, start)
        right = bisect.bisect_right(timestamps, end) - 1
        if left <= right:
            out.append((left, right))
    return out


def row_values(n_rows, windows):
    """Per row: None in probation, else (window index or None, unweighted value if detected).

    Inside window k the value is S(x)/S(-1) with x = -(right - i + 1)/width (times
    tpWeight later); outside, it is the false-positive penalty S(|i - right_prev| /
    (width_prev - 1)) of the previous window, or -1 before any window (times fpWeight).
    """
    values = [None] * n_rows
    k, prev = 0, None  # next window not yet passed; last window fully passed
    for i in range(probation_rows(n_rows), n_rows):
        while k < len(windows) and windows[k][1] < i:
            prev, k = windows[k], k + 1
        if k < len(windows) and windows[k][0] <= i:
            left, right = windows[k]
            values[i] = (k, scaled_sigmoid(-(right - i + 1) / (right - left + 1)) / S_START)
        elif prev is None:
            values[i] = (None, -1.0)
        else:
            left, right = prev
            # A one-row window has no width to scale by; NAB divides by zero there.
            values[i] = (None, scaled_sigmoid((i - right) / max(right - left, 1)))
    return values


def scored_windows(values):
    """Windows with at least one row past probation: only these can be hit or missed."""
    return {v[0] for v in values if v is not None and v[0] is not None}


def score_detections(n_rows, windows, detections, cost):
    """Raw score of one file for a fixed set of detected rows -> (raw, tp, fp, fn).

    The direct form of the method; the threshold sweep below must agree with it.
    """
    values = row_values(n_rows, windows)
    first, fp_sum, fp = {}, 0.0, 0
    for i in sorted(set(detections)):
        if values[i] is None:
            continue
        k, v = values[i]
        if k is None:
            fp_sum, fp = fp_sum + v, fp + 1
        elif k not in first:  # only the earliest detection in a window counts
            first[k] = v
    fn = len(scored_windows(values)) - len(first)
    raw = cost["tpWeight"] * sum(first.values()) + cost["fpWeight"] * fp_sum - cost["fnWeight"] * fn
    return raw, len(first), fp, fn


def sweep(rows, n_windows, cost):
    """Best threshold for one profile over all files at once, in one pass.

    ``rows``: (anomaly_score, window key or None, value) for every scored row, sorted
    by score descending. Lowering the threshold to each distinct score adds those rows
    as detections (score >= threshold), so the total is updated incrementally instead
    of rescoring every file per candidate. Ties keep the highest threshold.
    """
    tp_w, fp_w, fn_w = cost["tpWeight"], cost["fpWeight"], cost["fnWeight"]
    raw, fp = -fn_w * n_windows, 0
    best_value = {}  # window key -> value of its earliest detection so far
    best = dict(threshold=NEVER, raw=raw, tp=0, fp=0, fn=n_windows)
    i = 0
    while i < len(rows):
        threshold = rows[i][0]
        while i < len(rows) and rows[i][0] == threshold:
            _, key, value = rows[i]
            if key is None:
                raw, fp = raw + fp_w * value, fp + 1
            elif key not in best_value:
                raw += fn_w + tp_w * value
                best_value[key] = value
            elif value > best_value[key]:
                raw += tp_w * (value - best_value[key])
                best_value[key] = value
            i += 1
        if raw > best["raw"]:
            tp = len(best_value)
            best = dict(threshold=threshold, raw=raw, tp=tp, fp=fp, fn=n_windows - tp)
    return best


def _parse_time(text):
    return datetime.fromisoformat(text.strip())


def load_labels(labels_dir):
    """Windows ({'<category>/<name>.csv': [(start, end), ...]}) and profiles from a NAB labels dir."""
    with open(os.path.join(labels_dir, "combined_windows.json")) as f:
        windows = {k: [(_parse_time(a), _parse_time(b)) for a, b in v] for k, v in json.load(f).items()}
    with open(os.path.join(labels_dir, "profiles.json")) as f:
        profiles = {name: p["CostMatrix"] for name, p in json.load(f).items()}
    return windows, profiles


def result_files(results_dir, detector):
    """(data key '<category>/<name>.csv', path) for each results file of one detector."""
    root = os.path.join(results_dir, detector)
    prefix = detector + "_"
    for category in sorted(os.listdir(root)):
        if not os.path.isdir(os.path.join(root, category)):
            continue  # e.g. NAB's own <detector>_<profile>_scores.csv summaries
        for name in sorted(os.listdir(os.path.join(root, category))):
            if name.startswith(prefix) and name.endswith(".csv"):
                yield category + "/" + name[len(prefix):], os.path.join(root, category, name)


def read_results(path):
    """Timestamps and anomaly scores of one results CSV."""
    timestamps, scores = [], []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            timestamps.append(_parse_time(row["timestamp"]))
            scores.append(float(row["anomaly_score"]))
    return timestamps, scores


def score_detector(results_dir, detector, labels_dir):
    """Normalised NAB scores of one detector: {profile: {score, threshold, raw, tp, fp, fn}}.

    tp/fn count windows (detected/missed), fp counts detected rows outside windows.
    """
    windows, profiles = load_labels(labels_dir)
    rows, n_windows, n_files = [], 0, 0
    for key, path in result_files(results_dir, detector):
        if key not in windows:
            raise KeyError("%s: no labelled windows for %s" % (path, key))
        timestamps, scores = read_results(path)
        values = row_values(len(scores), window_rows(timestamps, windows[key]))
        n_windows += len(scored_windows(values))
        n_files += 1
        for score, v in zip(scores, values):
            if v is not None:
                rows.append((score, None if v[0] is None else (key, v[0]), v[1]))
    if not n_files:
        raise FileNotFoundError("no results files for %s under %s" % (detector, results_dir))
    rows.sort(key=lambda r: r[0], reverse=True)
    out = {}
    for name, cost in profiles.items():
        best = sweep(rows, n_windows, cost)
        null, perfect = -cost["fnWeight"] * n_windows, cost["tpWeight"] * n_windows
        best["score"] = 100.0 * (best["raw"] - null) / (perfect - null) if n_windows else 0.0
        out[name] = best
    return out


def score_results(results_dir, labels_dir, detectors=None):
    """{detector: score_detector(...)} for the given detectors, or every one in results_dir."""
    if not detectors:
        detectors = sorted(d for d in os.listdir(results_dir) if os.path.isdir(os.path.join(results_dir, d)))
    return {d: score_detector(results_dir, d, labels_dir) for d in detectors}


def format_table(scores):
    """One line per detector and profile."""
    lines = ["%-22s %-20s %7s %15s %9s %4s %4s %6s" % ("detector", "profile", "score", "threshold", "raw", "TP", "FN", "FP")]
    for detector, profiles in scores.items():
        for profile, r in profiles.items():
            lines.append("%-22s %-20s %7.1f %15.12g %9.3f %4d %4d %6d" % (
                detector, profile, r["score"], r["threshold"], r["raw"], r["tp"], r["fn"], r["fp"]))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Score NAB-layout detector results.")
    parser.add_argument("--results", required=True, help="dir holding <detector>/<category>/<detector>_<name>.csv")
    parser.add_argument("--labels", required=True, help="NAB labels dir (combined_windows.json, profiles.json)")
    parser.add_argument("--detector", action="append", help="detector(s) to score (default: all in --results)")
    args = parser.parse_args(argv)
    print(format_table(score_results(args.results, args.labels, args.detector)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
