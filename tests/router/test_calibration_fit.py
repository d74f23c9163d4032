"""Fitting a label calibration (numpy only): on synthetic scores from a model
with a known prior bias and one unreliable label, the fit must undo the bias
and give the unreliable label's answers less confidence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from swarmd.router.calibration import fit_label_calibration
from swarmd.config import LabelCalibration

LABELS = ("a", "b", "c")


def synthetic(n: int, seed: int):
    """ln p per label: +1.5 on the true label (except for true 'c', where the model
    is guessing), and a prior bias of +2 towards 'a' on every input."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, n)
    scores = rng.normal(0, 1, (n, 3)) - 6.0
    for i, t in enumerate(truth):
        if t != 2:
            scores[i, t] += 1.5
    scores[:, 0] += 2.0
    return scores, truth


def answers(cal: LabelCalibration, scores):
    out = []
    for row in scores:
        adj = cal.adjust(dict(zip(LABELS, row)))
        log_norm = math.log(sum(math.exp(v) for v in adj.values()))
        best = max(adj, key=adj.get)
        out.append((LABELS.index(best), cal.confidence(best, adj[best] - log_norm)))
    return out


def test_fit_undoes_prior_bias_and_distrusts_unreliable_label():
    scores, truth = synthetic(1500, seed=1)
    fit = fit_label_calibration(scores, truth, LABELS)
    assert set(fit) == {"scale", "bias", "slope", "intercept", "label_intercept"}
    assert fit["bias"]["a"] < fit["bias"]["b"]                 # the +2 prior towards 'a' is taken back
    cal = LabelCalibration(model="m", slope=fit["slope"], intercept=fit["intercept"], scale=fit["scale"],
                           bias=fit["bias"], label_intercept=fit["label_intercept"])
    test_scores, test_truth = synthetic(1500, seed=2)           # fresh data, not fitted on
    raw_accuracy = float((test_scores.argmax(1) == test_truth).mean())
    got = answers(cal, test_scores)
    accuracy = float(np.mean([a == t for (a, _), t in zip(got, test_truth)]))
    assert accuracy > raw_accuracy + 0.05
    conf_by_answer = {k: np.mean([c for a, c in got if a == k]) for k in range(3) if any(a == k for a, _ in got)}
    assert conf_by_answer[1] > conf_by_answer[2]                # 'b' answers are right more often than 'c' answers
    # calibrated: mean confidence tracks accuracy on data it was not fitted on
    assert np.mean([c for _, c in got]) == pytest.approx(accuracy, abs=0.05)
