"""Consolidation: dedup and pruning, the risk-bounded threshold, a refit that
makes the gate honest is swapped in, one that would make it worse is not,
and a router picks up the new gate on its next request."""

from __future__ import annotations

import math
import random

import pytest

from swarmd.memory.consolidate import consolidate, risk_threshold, utility
from swarmd.memory.gate import NEVER, GateBook
from swarmd.memory.records import Verified
from swarmd.memory.stats import gate_stats, wilson_upper
from swarmd.router.calibration import label_decision
from tests.fakes import Answer
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.config import make_config
from tests.fakes.ollama_server import FakeOllama

LABELS = ("build", "docs", "fix", "test")


def _config(**memory):
    return make_config(memory={"min_verified": 100, **memory})


def test_wilson_upper_matches_published_intervals():
    # 95% Wilson intervals as tabulated by Newcombe (Stat Med 1998, table I): 0/10 -> 0.2775, 1/29 -> 0.1718
    assert wilson_upper(0, 10) == pytest.approx(0.2775, abs=1e-4)
    assert wilson_upper(1, 29) == pytest.approx(0.1718, abs=1e-4)
    assert wilson_upper(0, 0) == 1.0
    with pytest.raises(ValueError):
        wilson_upper(3, 2)


def test_risk_threshold_stops_at_the_first_threshold_whose_bound_fails():
    conf = [0.95] * 40 + [0.85] * 40 + [0.75] * 40
    right = [True] * 40 + [True] * 36 + [False] * 4 + [False] * 40
    t = risk_threshold(conf, right, alpha=0.15)
    assert t == 0.85            # 4 wrong of 80 accepted: bound 0.122; at 0.75: 44/120 wrong
    assert risk_threshold(conf[:5], right[:5], alpha=0.15) == NEVER      # 0/5: bound 0.43, too few to say
    assert utility([0.9, 0.9], [True, False], 0.8, alpha=0.2) == pytest.approx(1 - 4)


def test_a_weighted_bound_with_every_answer_wrong_is_computed_not_raised():
    # Kish's effective size times the weighted wrong share came out one rounding above the size
    # (0.269 + 0.186 + 1.39, all wrong) and wilson_upper raised: a consolidation stopped there
    conf, right, weights = [0.9, 0.8, 0.7], [False] * 3, [0.269, 0.186, 1.39]
    assert risk_threshold(conf, right, alpha=0.15, weights=weights) == NEVER
    n_eff = sum(weights) ** 2 / sum(w * w for w in weights)
    assert risk_threshold(conf * 20, right * 20, alpha=0.15, weights=weights * 20) == NEVER
    assert wilson_upper(n_eff, n_eff) == 1.0


def _biased_records(n, seed=0, oid="o", prior="test", prompt=None):
    """A small model that over-predicts ``prior`` (as Gemma 270M does 'test'
    on unseen repositories): raw answers mostly wrong, but its scores carry
    the signal; ``prompt``: the prompt form recorded."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        truth = rng.choice(LABELS)
        scores = {l: math.log(0.05) + rng.gauss(0, 0.3) for l in LABELS}
        scores[prior] += 2.5                            # the prior towards one label
        scores[truth] += rng.choice([0.0, 2.0, 6.0])    # no, weak or clear evidence
        local, q, confidence = label_decision(scores)
        out.append(Verified("classify", LABELS, f"message {seed}-{i} {rng.random()}", truth, "human",
                            objective_id=f"{oid}{seed}-{i}", model="small", local_tier="LOCAL_FAST",
                            local_answer=local, local_confidence=confidence, local_accepted=confidence >= 0.7,
                            local_scores=scores, local_prompt=prompt))
    return out


def test_a_refit_that_is_better_on_held_out_records_becomes_the_active_gate(memory):
    memory.add_many(_biased_records(400))
    config = _config()
    before = {s.model: s for s in gate_stats(memory)}["small"]
    report = consolidate(memory, config)
    (group,) = report.groups
    assert before.false_accept > 0.3                    # the raw gate at 0.7 is dishonest ...
    assert group.utility_old < 0 < group.utility_new and group.swapped
    assert group.held_out_false_accept <= 0.15 and group.held_out_coverage > 0.2   # ... the refit one is not
    cal, threshold, version = GateBook(memory).active()[("classify", ",".join(LABELS), "small", "fixed")]
    assert version == group.version and threshold == group.threshold < 1
    assert cal.bias["test"] < min(v for k, v in cal.bias.items() if k != "test") - 1   # learned the prior


def test_each_prompt_form_gets_its_own_refit_from_its_own_records(memory):
    # the same model scores differently in the two forms: a prior towards 'test' in the
    # fixed form (records from before forms were recorded: NULL), towards 'docs' with retrieved examples
    memory.add_many(_biased_records(400, seed=0, oid="f") + _biased_records(400, seed=1, oid="r", prior="docs",
                                                                             prompt="retrieved"))
    report = consolidate(memory, _config())
    assert sorted((g.prompt, g.trained_on + g.held_out) for g in report.groups) == [("fixed", 400), ("retrieved", 400)]
    active = GateBook(memory).active()
    key = ",".join(LABELS)
    fixed, retrieved = active[("classify", key, "small", "fixed")][0], active[("classify", key, "small", "retrieved")][0]
    assert (fixed.prompt, retrieved.prompt) == ("fixed", "retrieved")
    assert min(fixed.bias, key=fixed.bias.get) == "test" and min(retrieved.bias, key=retrieved.bias.get) == "docs"
    cals, thresholds = GateBook(memory).learned("classify", LABELS)
    assert {c.prompt for c in cals} == {"fixed", "retrieved"} and set(thresholds) == {("small", "fixed"),
                                                                                        ("small", "retrieved")}
    assert {s.prompt: s.verified for s in gate_stats(memory)} == {"fixed": 400, "retrieved": 400}


def test_a_fit_on_scores_that_point_away_from_the_answers_keeps_a_small_positive_scale():
    from swarmd.memory.consolidate import MIN_SCALE, _fit

    # the answer is always the label the model scored lowest: the fitted scale is negative,
    # which LabelCalibration refuses; the refit keeps MIN_SCALE (the scores barely count)
    rng = random.Random(0)
    records = []
    for i in range(60):
        scores = {l: math.log(rng.random()) for l in LABELS}
        records.append(Verified("classify", LABELS, f"message {i}", min(scores, key=scores.get), "human",
                                objective_id=f"a{i}", model="small", local_tier="LOCAL_FAST",
                                local_answer=max(scores, key=scores.get), local_confidence=0.5,
                                local_accepted=False, local_scores=scores))
    cal = _fit(records, list(LABELS), "small", "retrieved")
    assert (cal.scale, cal.prompt) == (MIN_SCALE, "retrieved")


def test_a_refit_that_would_make_the_gate_worse_is_not_swapped_in(memory):
    from swarmd.memory.consolidate import _held_out

    # a model without label scores (threshold only): on the train part its answers at
    # 0.5-0.6 were right, on the held-out part they are wrong (the data shifted)
    rng = random.Random(1)
    records = []
    for i in range(600):
        text = f"commit {i}"
        conf = rng.uniform(0.5, 0.6)
        probe = Verified("classify", LABELS, text, "fix", "teacher", objective_id=f"x{i}", model="small",
                         local_tier="LOCAL_FAST", local_answer="fix", local_confidence=conf, local_accepted=False)
        if _held_out(probe):
            probe.answer = "docs"
        records.append(probe)
    memory.add_many(records)
    report = consolidate(memory, _config())
    (group,) = report.groups
    assert group.threshold < 0.6 and group.utility_new < 0 <= group.utility_old
    assert not group.swapped and GateBook(memory).active() == {}
    row = memory.conn.execute("SELECT active, note FROM gate_calibrations WHERE version=?", (group.version,)).fetchone()
    assert row[0] == 0 and "not better" in row[1]            # the candidate is kept as a version


def _threshold_only(n_right_high: int, n_wrong_low: int, source_high: str = "human") -> list[Verified]:
    """Records of a model without label scores: ``n_right_high`` right answers at
    confidence 0.9 (``source_high``), ``n_wrong_low`` wrong ones at 0.5-0.6 (teacher)."""
    rng = random.Random(2)
    out = [Verified("classify", LABELS, f"sure {i}", "fix", source_high, objective_id=f"h{i}", model="small",
                    local_tier="LOCAL_FAST", local_answer="fix", local_confidence=0.9, local_accepted=True)
           for i in range(n_right_high)]
    out += [Verified("classify", LABELS, f"unsure {i}", "docs", "teacher", objective_id=f"l{i}", model="small",
                     local_tier="LOCAL_FAST", local_answer="fix", local_confidence=0.55,
                     local_accepted=False) for i in range(n_wrong_low)]
    return out


def test_a_tie_goes_to_the_candidate_when_the_gate_in_use_cannot_show_its_risk_bound(memory):
    # only teacher records: every answer the gate in use (0.70) accepted went unverified, so no
    # held-out record tells its errors: both gates score 0 on held-out records; the gate in use
    # has no verified accepted answer behind it, the candidate (nothing certifiable: NEVER) wins
    memory.add_many(_threshold_only(0, 300))
    (group,) = consolidate(memory, _config()).groups
    assert group.utility_new == group.utility_old == 0 and group.threshold == NEVER
    assert group.swapped and "cannot show its risk bound" in group.note
    assert GateBook(memory).active()[("classify", ",".join(LABELS), "small", "fixed")][1] == NEVER
    (again,) = consolidate(memory, _config()).groups     # NEVER in use accepts nothing: no churn of versions
    assert not again.swapped and GateBook(memory).active()[("classify", ",".join(LABELS), "small", "fixed")][2] \
        == group.version


def test_a_gate_in_use_without_its_risk_bound_gives_way_even_to_a_lucky_held_out_score(memory):
    from swarmd.memory.consolidate import _held_out

    # six audits (weight 1/0.05 = 20 each) are all the gate in use has verified of what it accepted:
    # they were right, so its held-out utility is positive, but 6 effective answers cannot bound a
    # false-accept rate at 0.15 (Wilson upper 0.39); the candidate (NEVER) does as well as escalating
    records = _threshold_only(6, 300, source_high="audit")
    assert any(_held_out(r) for r in records[:6])
    memory.add_many(records)
    (group,) = consolidate(memory, _config(audit_rate=0.05)).groups
    assert group.utility_old > group.utility_new == 0 and group.threshold == NEVER
    assert group.swapped and "cannot show its risk bound" in group.note


def test_a_tie_keeps_the_gate_in_use_when_its_risk_bound_holds(memory):
    # 120 verified right answers at 0.9 behind the gate in use (0.70): bound 0.03 <= 0.15; the
    # candidate (threshold 0.9) accepts the same answers: same utility, the gate in use stays
    memory.add_many(_threshold_only(120, 300))
    (group,) = consolidate(memory, _config()).groups
    assert group.threshold == 0.9 and group.utility_new == group.utility_old > 0
    assert not group.swapped and GateBook(memory).active() == {}


def test_below_min_verified_the_gate_in_use_stays(memory):
    memory.add_many(_biased_records(60))
    (group,) = consolidate(memory, _config()).groups
    assert group.version is None and "min_verified 100" in group.note
    assert memory.conn.execute("SELECT COUNT(*) FROM gate_calibrations").fetchone()[0] == 0


def test_duplicates_are_removed_and_records_pruned_to_max_by_value(memory):
    base = Verified("classify", LABELS, "Fix  the build", "build", "teacher", objective_id="a", model="small",
                    local_answer="build", local_tier="LOCAL_FAST")
    memory.add(base)
    memory.add(Verified("classify", LABELS, "fix the BUILD", "fix", "human", objective_id="b", model="small",
                        local_answer="build", local_tier="LOCAL_FAST"))
    for i in range(5):
        memory.add(Verified("classify", LABELS, f"docs typo {i}", "docs", "teacher", objective_id=f"d{i}"))
    report = consolidate(memory, _config(max_records=4))
    assert (report.records_before, report.duplicates_removed, report.pruned, report.records_after) == (7, 1, 2, 4)
    kept = {r.objective_id: r for r in memory.records()}
    assert "b" in kept and "a" not in kept                    # the human record wins the duplicate
    assert kept["b"].value == max(r.value for r in kept.values())   # a human correction is worth most


def test_a_worker_uses_a_new_gate_from_its_next_job_without_restart(swarm_factory):
    with FakeOllama([Answer("fix", logprobs=[math.log(0.8)])]) as fast, FakeAnthropic(["docs"]) as api:
        swarm = swarm_factory(fast.url, api.url)
        labels = ",".join(LABELS)
        swarm.run({"id": "g-1", "action": "classify", "input": "tidy the parser", "labels": labels})
        swarm.daemon.memory.conn.execute(            # what a consolidation's swap writes
            "INSERT INTO gate_calibrations (action, label_key, model, calibration, threshold, trained_on, held_out, "
            "utility_new, utility_old, held_out_coverage, active, created_at, note) "
            "VALUES ('classify', ?, 'small', NULL, ?, 100, 40, 1, 0, 0, 1, 0, 'test')", (labels, NEVER))
        swarm.run({"id": "g-2", "action": "classify", "input": "tidy the lexer", "labels": labels})
    first, second = swarm.daemon.store.get("g-1"), swarm.daemon.store.get("g-2")
    assert (first["tier"], first["confidence"]) == ("LOCAL_FAST", pytest.approx(0.8))   # 0.8 >= 0.7 configured
    assert second["tier"] == "API_FALLBACK" and second["attempts"][0]["outcome"] == "escalated"


def test_the_daemon_schedules_consolidation_at_the_configured_time_and_runs_it(swarm_factory):
    from swarmd.daemon.memory_jobs import register_memory_jobs, run_consolidation

    swarm = swarm_factory("http://127.0.0.1:9", "http://127.0.0.1:9", memory={"consolidate_at": "04:15"})
    swarm.daemon.memory.add_many(_biased_records(120))
    register_memory_jobs(swarm.daemon.scheduler, swarm.daemon)
    trigger = str(swarm.daemon.scheduler.get_job("memory_consolidate").trigger)
    assert "hour='4'" in trigger and "minute='15'" in trigger
    report = run_consolidation(swarm.daemon)
    assert report.records_after == 120 and report.groups[0].version is not None


def test_audits_weigh_for_the_accepted_answers_they_stand_for():
    # 60 rejected answers, all right at 0.9; one audit (rate 5%: stands for 20) wrong at 0.95
    conf, right = [0.9] * 60 + [0.95], [True] * 60 + [False]
    assert risk_threshold(conf, right, alpha=0.15) == 0.9                       # unweighted: 1/61 wrong
    weights = [1.0] * 60 + [20.0]
    assert risk_threshold(conf, right, alpha=0.15, weights=weights) == NEVER   # weighted: 20/80 wrong
