"""Consolidation: deduplicate, score and prune the verified records, then refit the quality gate.

Run daily by the daemon and by ``swarmctl memory consolidate``; :func:`consolidate`:

1. **Deduplicate** per (action, label set, normalised input): the most trusted source
   (human > audit > teacher), then the newest.
2. **Value** every record (:func:`~swarmd.memory.outcomes.value_score`).
3. **Prune** beyond ``memory.max_records``: the lowest-valued, then oldest.
4. **Refit the gate** per (action, label set, model, prompt form) from at least
   ``memory.min_verified`` records with a known answer: a new label calibration, the lowest
   threshold whose 95% upper bound of the false-accept rate stays ≤
   ``quality.max_false_accept`` (:func:`risk_threshold`), and a swap when the candidate
   scores better on held-out records (:func:`utility`), or when the gate in use cannot
   show its bound (:func:`gate_bound`) and the candidate does no worse than escalating.
   Every candidate is kept as a version.  The method and its reasons: docs/design.md.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import asdict, dataclass, field

import numpy as np
from loguru import logger

from swarmd.config import Config, LabelCalibration
from swarmd.memory.gate import NEVER, GateBook
from swarmd.memory.outcomes import value_score
from swarmd.memory.records import SOURCE_RANK, Memory, Verified, label_key
from swarmd.memory.stats import wilson_upper
from swarmd.router.calibration import fit_label_calibration, label_decision

HELD_OUT_PERCENT = 30
FOLDS = 5
#: records of one group a calibration is fitted on at most (the newest); keeps a refit within seconds
FIT_MAX = 2000
#: the smallest label-score scale a refit keeps (LabelCalibration requires > 0)
MIN_SCALE = 1e-3


@dataclass
class GroupReport:
    """The refit of one (action, label set, model, prompt form): sizes, held-out utilities
    (new candidate and gate in use), the candidate's threshold and held-out
    false-accept rate and coverage, whether it was swapped in, and why."""

    action: str
    labels: str
    model: str
    prompt: str
    trained_on: int
    held_out: int
    threshold: float | None = None
    utility_new: float | None = None
    utility_old: float | None = None
    held_out_false_accept: float | None = None
    held_out_coverage: float | None = None
    swapped: bool = False
    version: int | None = None
    note: str = ""


@dataclass
class Report:
    """What one consolidation did; ``seconds`` is wall time; ``indexed``:
    verified records embedded into the vector index afterwards."""

    records_before: int
    duplicates_removed: int
    pruned: int
    records_after: int
    groups: list[GroupReport] = field(default_factory=list)
    seconds: float = 0.0
    indexed: int = 0

    def to_json(self) -> dict:
        """Plain dict (for ``--json``)."""
        return asdict(self)


# --------------------------------------------------------------------------- the gate's arithmetic


def utility(confidences, correct, threshold: float, alpha: float, weights=None) -> float:
    """Held-out utility of a gate: ``+1`` per right answer accepted and
    ``−(1−α)/α`` per wrong one (``α`` = ``quality.max_false_accept``), so a
    gate whose accepted answers are wrong exactly at rate ``α`` scores 0 and
    one that accepts nothing scores 0.  Positive only when accepting beats
    escalating at the tolerated error rate.  ``weights``: per answer
    (:func:`record_weight`; default 1)."""
    c, y = np.asarray(confidences, float), np.asarray(correct, bool)
    w = np.ones(len(c)) if weights is None else np.asarray(weights, float)
    accepted = c >= threshold
    return float(w[accepted & y].sum() - (1 - alpha) / alpha * w[accepted & ~y].sum())


def record_weight(record: Verified, audit_rate: float) -> float:
    """Inverse inclusion probability of a record (Horvitz–Thompson): an
    answer the gate rejected always becomes a teacher record (1), one it
    accepted becomes an audit record with probability ``memory.audit_rate``
    (``1 / audit_rate``); human records count 1 (a reviewer's sample)."""
    return 1.0 / audit_rate if record.source == "audit" and audit_rate > 0 else 1.0


def risk_threshold(confidences, correct, alpha: float, weights=None) -> float:
    """The lowest confidence ``t`` among ``confidences`` such that, scanning
    the distinct confidences from the highest down and stopping at the first
    failure, the answers with confidence ≥ ``t`` have a false-accept rate
    whose 95% Wilson upper bound is ≤ ``alpha``; :data:`~swarmd.memory.gate.NEVER`
    when the first one tested already fails (docs/design.md, swarmd.memory.consolidate).  The
    scan starts once enough answers are accepted for a bound with no error to
    pass (22 at α = 0.15): above that, no threshold can be judged.  Thresholds are
    observed confidences, so the gate never admits a range it has not seen.

    ``weights`` (:func:`record_weight`; default 1): the rate is the weighted
    share of wrong answers and the bound's sample size Kish's effective size
    ``(Σw)² / Σw²``, so a few heavily weighted audits do not pass for many."""
    c, y = np.asarray(confidences, float), np.asarray(correct, bool)
    w = np.ones(len(c)) if weights is None else np.asarray(weights, float)
    order = np.argsort(-c, kind="stable")
    cs, ws = c[order], w[order]
    total, wrong, squares = np.cumsum(ws), np.cumsum(ws * ~y[order]), np.cumsum(ws * ws)
    chosen = NEVER
    for i in range(len(cs)):
        if i + 1 < len(cs) and cs[i + 1] == cs[i]:
            continue                 # the threshold cs[i] accepts every tie: judge it at the last one
        upper, n_eff = _weighted_upper(total[i], wrong[i], squares[i])
        if wilson_upper(0, n_eff) > alpha:
            continue                 # too few accepted for any bound to pass: the sequence starts later
        if upper > alpha:
            break
        chosen = float(cs[i])
    return chosen


def gate_bound(confidences, correct, threshold: float, weights=None) -> tuple[float, float]:
    """``(upper, n_eff)``: the 95% Wilson upper bound of the false-accept
    rate of the answers with confidence ≥ ``threshold`` and the effective
    number of them (Kish's ``(Σw)² / Σw²``, weights as in
    :func:`risk_threshold`); ``(1.0, 0.0)`` when none is accepted."""
    c, y = np.asarray(confidences, float), np.asarray(correct, bool)
    w = np.ones(len(c)) if weights is None else np.asarray(weights, float)
    accepted = c >= threshold
    if not accepted.any():
        return 1.0, 0.0
    wa = w[accepted]
    return _weighted_upper(float(wa.sum()), float(wa[~y[accepted]].sum()), float((wa * wa).sum()))


def _weighted_upper(total: float, wrong: float, squares: float) -> tuple[float, float]:
    """``(upper, n_eff)`` of weighted answers (``total`` = Σw, ``wrong`` = Σw
    of the wrong ones, ``squares`` = Σw²): Kish's effective size
    ``n_eff = total² / squares`` and the 95% Wilson upper bound of the
    weighted wrong share at that size (:func:`risk_threshold`, :func:`gate_bound`).
    The share is clamped to [0, 1]: when every answer is wrong, ``n_eff * wrong
    / total`` came out one rounding above ``n_eff`` (e.g. Σw 1.5916695648885233,
    Σw² 0.9387347471374378) and :func:`wilson_upper` raised, stopping the
    consolidation (``bench/learning.py`` on python-semantic-release's commits
    with a 15%-wrong teacher)."""
    n_eff = total ** 2 / squares
    share = min(max(wrong / total, 0.0), 1.0)
    return wilson_upper(n_eff * share, n_eff), n_eff


def _held_out(record: Verified) -> bool:
    return zlib.crc32(record.input.casefold().encode()) % 100 < HELD_OUT_PERCENT


def _decide(records: list[Verified], labels: list[str], cal: LabelCalibration | None,
            temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(confidences, correct) of ``records`` under calibration ``cal`` (scored
    records) or as recorded (threshold-only groups: ``labels`` empty)."""
    if not labels:
        return (np.array([r.local_confidence or 0.0 for r in records]),
                np.array([r.local_answer == r.answer for r in records]))
    out = [label_decision({l: r.local_scores[l] for l in labels}, cal, temperature) for r in records]
    return np.array([o[2] for o in out]), np.array([o[0] == r.answer for o, r in zip(out, records)])


def _fit(records: list[Verified], labels: list[str], model: str, form: str) -> LabelCalibration:
    recent = records[-FIT_MAX:]
    scores = np.array([[r.local_scores[l] for l in labels] for r in recent])
    truth = [labels.index(r.answer) for r in recent]
    fit = fit_label_calibration(scores, truth, labels)
    # a handful of records can fit a scale <= 0 (scores anti-correlated with the answers):
    # kept just above 0, the calibration ignores the scores and its confidences stay low
    fit["scale"] = max(fit["scale"], MIN_SCALE)
    return LabelCalibration(model=model, prompt=form, **fit)


# --------------------------------------------------------------------------- steps


def deduplicate(memory: Memory) -> int:
    """Step 1: keep one record per (action, label set, normalised input); returns how many were removed."""
    with memory.lock:
        rows = memory.conn.execute("SELECT id, action, label_key, input_norm, source, verified_at "
                                   "FROM verified_outcomes").fetchall()
    best: dict[tuple, tuple] = {}
    drop = []
    for rid, action, key, norm, source, at in rows:
        k, rank = (action, key, norm), (SOURCE_RANK.get(source, 0), at, rid)
        if k in best:
            drop.append(min(best[k], rank)[2])
            best[k] = max(best[k], rank)
        else:
            best[k] = rank
    with memory.lock, memory.transaction():
        memory.conn.executemany("DELETE FROM verified_outcomes WHERE id=?", [(i,) for i in drop])
    return len(drop)


def score_and_prune(memory: Memory, max_records: int) -> int:
    """Steps 2-3: write every record's value, then delete the lowest-valued
    beyond ``max_records``; returns how many were deleted."""
    with memory.lock:
        counts = dict(((a, k, t), n) for a, k, t, n in memory.conn.execute(
            "SELECT action, label_key, template, COUNT(*) FROM verified_outcomes GROUP BY action, label_key, template"))
    values = []
    for r in memory.records():
        row = r.row()
        values.append((value_score(r, counts.get((r.action, row["label_key"], row["template"]), 1)), r.id))
    with memory.lock, memory.transaction():
        memory.conn.executemany("UPDATE verified_outcomes SET value=? WHERE id=?", values)
        cur = memory.conn.execute(
            "DELETE FROM verified_outcomes WHERE id IN (SELECT id FROM verified_outcomes "
            "ORDER BY value DESC, verified_at DESC, id DESC LIMIT -1 OFFSET ?)", (max_records,))
    return cur.rowcount


def current_gate(config: Config, book: GateBook, action: str, key: str, model: str,
                 form: str = "fixed") -> tuple[LabelCalibration | None, float]:
    """The gate in use for one group: the active learned (calibration,
    threshold), else the configured calibration for that model, label set and
    prompt form (if any) with the action's configured threshold."""
    active = book.active().get((action, key, model, form))
    if active is not None:
        return active[0], active[1]
    labels = tuple(key.split(",")) if key else ()
    shipped = next((c for c in config.actions[action].label_calibration if c.applies(model, labels, form)), None) \
        if action in config.actions else None
    return shipped, config.quality.threshold_for(action) if action in config.actions else config.quality.threshold


def refit_group(memory: Memory, config: Config, book: GateBook, action: str, key: str, model: str,
                records: list[Verified], form: str = "fixed") -> GroupReport:
    """Step 4 for one group (see the module docstring); writes the candidate
    version and, when it is better on held-out records, activates it."""
    alpha = config.quality.max_false_accept
    labels = key.split(",") if key else []
    scored = bool(labels) and all(r.local_scores and set(r.local_scores) == set(labels) for r in records)
    cols = labels if scored else []
    train = [r for r in records if not _held_out(r)]
    test = [r for r in records if _held_out(r)]
    report = GroupReport(action, key, model, form, len(train), len(test))
    if len(records) < config.memory.min_verified or len(train) < FOLDS or not test:
        report.note = f"{len(records)} usable verified records < memory.min_verified {config.memory.min_verified}; " \
                      "gate in use kept"
        return report
    w_train = [record_weight(r, config.memory.audit_rate) for r in train]
    w_test = [record_weight(r, config.memory.audit_rate) for r in test]
    oof_c, oof_y = np.zeros(len(train)), np.zeros(len(train), bool)
    folds = np.arange(len(train)) % FOLDS
    for f in range(FOLDS):
        part = [r for r, g in zip(train, folds) if g != f]
        cal = _fit(part, cols, model, form) if scored else None
        oof_c[folds == f], oof_y[folds == f] = _decide([r for r, g in zip(train, folds) if g == f], cols, cal)
    cal_new = _fit(train, cols, model, form) if scored else None
    thr_new = risk_threshold(oof_c, oof_y, alpha, w_train)
    cal_old, thr_old = current_gate(config, book, action, key, model, form)
    temperature = next((m.label_temperature for ms in config.tiers.values() for m in ms if m.model == model), 1.0)
    c_new, y_new = _decide(test, cols, cal_new)
    c_old, y_old = _decide(test, cols, cal_old, temperature) if scored else (c_new, y_new)
    report.threshold = thr_new
    report.utility_new = utility(c_new, y_new, thr_new, alpha, w_test)
    report.utility_old = utility(c_old, y_old, thr_old, alpha, w_test)
    accepted, w = c_new >= thr_new, np.asarray(w_test)
    report.held_out_coverage = float(w[accepted].sum() / w.sum())
    report.held_out_false_accept = float(w[accepted & ~y_new].sum() / w[accepted].sum()) if accepted.any() else None
    report.swapped = report.utility_new > report.utility_old
    report.note = "better on held-out records: active" if report.swapped else "not better on held-out records: kept the gate in use"
    if not report.swapped and report.utility_new >= 0 and thr_old < NEVER:   # NEVER accepts nothing: no risk to show
        c_all, y_all = _decide(train + test, cols, cal_old, temperature)    # cols empty: as recorded
        upper, n_eff = gate_bound(c_all, y_all, thr_old, w_train + w_test)
        if upper > alpha:
            report.swapped = True
            report.note = (f"the gate in use cannot show its risk bound (false-accept upper bound {upper:.2f} > "
                           f"{alpha:.2f} over {n_eff:.1f} effective verified answers it accepts) and the candidate "
                           "does no worse than escalating on held-out records: active")
    with memory.lock, memory.transaction():
        if report.swapped:
            memory.conn.execute("UPDATE gate_calibrations SET active=0 WHERE action=? AND label_key=? AND model=? "
                                "AND prompt=?", (action, key, model, form))
        cur = memory.conn.execute(
            "INSERT INTO gate_calibrations (action, label_key, model, prompt, calibration, threshold, trained_on, "
            "held_out, utility_new, utility_old, held_out_false_accept, held_out_coverage, active, created_at, note) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (action, key, model, form, json.dumps(cal_new.model_dump()) if cal_new else None, thr_new, len(train),
             len(test), report.utility_new, report.utility_old, report.held_out_false_accept,
             report.held_out_coverage, int(report.swapped), time.time(), report.note))
        report.version = cur.lastrowid
    logger.info("memory: gate {} [{}] {} ({} prompt): candidate v{} threshold {:.2f} held-out utility {:.1f} vs "
                "{:.1f} in use (threshold {:.2f}) over {} held-out records: {}", action, key, model, form,
                report.version, thr_new,
                report.utility_new, report.utility_old, thr_old, len(test),
                "swapped in" if report.swapped else "not swapped")
    return report


def consolidate(memory: Memory, config: Config, retriever=None) -> Report:
    """Run every step (module docstring) once; returns the :class:`Report`.
    Safe to run while the daemon writes (each step is its own transaction).
    ``retriever``: a :class:`swarmd.memory.retrieval.Retriever` whose vector
    index is then brought up to date (:meth:`~swarmd.memory.retrieval.Retriever.sync_all`;
    ``Report.indexed`` records embedded), or ``None``."""
    start = time.perf_counter()
    before = memory.count()
    removed = deduplicate(memory)
    pruned = score_and_prune(memory, config.memory.max_records)
    report = Report(before, removed, pruned, memory.count())
    groups: dict[tuple[str, str, str, str], list[Verified]] = {}
    for r in memory.records("answer IS NOT NULL AND local_answer IS NOT NULL AND model IS NOT NULL "
                            "AND local_tier != 'MEMORY'"):
        groups.setdefault((r.action, label_key(r.labels), r.model, r.prompt_form), []).append(r)
    book = GateBook(memory)
    for (action, key, model, form), records in sorted(groups.items()):
        report.groups.append(refit_group(memory, config, book, action, key, model, records, form))
    if retriever is not None:
        report.indexed = retriever.sync_all()
    report.seconds = time.perf_counter() - start
    logger.info("memory: consolidated {} records in {:.1f}s: {} duplicates removed, {} pruned, {} gate groups refitted",
                before, report.seconds, removed, pruned, sum(g.version is not None for g in report.groups))
    return report
