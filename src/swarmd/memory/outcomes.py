"""Turning what the cascade did into verified outcomes, and what a record is worth.

:func:`teacher_record` is the hook on the cascade's decision: an objective
whose answer was accepted at a higher tier after a lower tier answered and
was not accepted yields one ``teacher`` record (the daemon calls it for every
persisted ``finished`` event; benchmarks call it on a
:class:`~swarmd.router.RouteResult`).

:func:`value_score` is the seed's weighting of a record (outcome 0.4,
feedback 0.2, reusability 0.2, complexity 0.1, novelty 0.1); consolidation
prunes the lowest-valued records first.
"""

from __future__ import annotations

import time
from dataclasses import asdict, is_dataclass

from loguru import logger

from swarmd.memory.records import Verified

#: attempt outcomes of an answer the gate did not accept
NOT_ACCEPTED = ("escalated", "rejected", "low")
#: how much each verifier is trusted, the ``feedback`` term of :func:`value_score`
SOURCE_TRUST = {"human": 1.0, "audit": 0.75, "teacher": 0.5}
#: the seed's weights (user_feedback design notes), summing to 1
WEIGHTS = {"outcome": 0.4, "feedback": 0.2, "reusability": 0.2, "complexity": 0.1, "novelty": 0.1}


def _as_dict(attempt) -> dict:
    return asdict(attempt) if is_dataclass(attempt) else dict(attempt)


def local_fields(attempt: dict | None) -> dict:
    """The ``local_*`` fields of a :class:`Verified` from one attempt dict (or ``{}``)."""
    if not attempt:
        return {}
    return {"model": attempt.get("model"), "local_tier": attempt.get("tier"),
            "local_answer": attempt.get("answer"), "local_confidence": attempt.get("confidence"),
            "local_accepted": attempt.get("outcome") == "accepted", "local_scores": attempt.get("scores"),
            "local_prompt": attempt.get("prompt")}


def teacher_record(action: str, text: str, labels, attempts, objective_id: str | None = None,
                   fallback_ts: float | None = None) -> Verified | None:
    """The ``teacher`` record of one routed request, or ``None`` when there is none.

    ``attempts``: the request's attempts in call order (:class:`~swarmd.router.Attempt`
    objects or their dicts).  There is a record when the last attempt was
    accepted and an earlier attempt from another tier gave an answer the gate
    did not accept: the accepted answer is the verified one, the first such
    earlier attempt is the judged local answer, and every earlier answered
    attempt is kept in ``rejected``.  Errors (no answer) are left out.

    ``created_at`` is the judged attempt's ``ts`` (unix seconds), else the
    accepted one's; when neither has one (a worker that did not write it),
    ``fallback_ts`` (the caller's time for the objective), else now, with a
    warning naming the objective: the record is kept, not dropped.
    """
    judged = _judged(attempts)
    if judged is None:
        return None
    final, lower = judged
    labels = tuple(labels or ())
    if labels and final["answer"] not in labels:
        return None
    rejected = [{k: a.get(k) for k in ("tier", "model", "answer", "confidence")} for a in lower]
    created_at = lower[0].get("ts") or final.get("ts")
    if created_at is None:
        created_at = fallback_ts if fallback_ts is not None else time.time()
        logger.warning("memory: the attempts of objective {} have no ts; its teacher record is dated {} ({})",
                       objective_id, created_at, "the objective's time" if fallback_ts is not None else "now")
    return Verified(action=action, labels=labels, input=text, answer=final["answer"], source="teacher",
                    verifier=final.get("model"), objective_id=objective_id, rejected=rejected,
                    created_at=created_at, **local_fields(lower[0]))


def _judged(attempts) -> tuple[dict, list[dict]] | None:
    """``(accepted final attempt, earlier answered attempts of other tiers the
    gate did not accept)`` as dicts, or ``None`` when ``attempts`` hold no
    teacher record (:func:`teacher_record`)."""
    tried = [_as_dict(a) for a in attempts]
    if not tried or tried[-1].get("outcome") != "accepted" or tried[-1].get("answer") is None:
        return None
    final = tried[-1]
    lower = [a for a in tried[:-1] if a.get("answer") is not None and a.get("outcome") in NOT_ACCEPTED
             and a.get("tier") != final.get("tier")]
    return (final, lower) if lower else None


def value_score(record: Verified, template_count: int = 1) -> float:
    """The record's value in [0, 1]: ``0.4·outcome + 0.2·feedback +
    0.2·reusability + 0.1·complexity + 0.1·novelty`` (the seed's weights,
    :data:`WEIGHTS`).  Each term is in [0, 1]:

    * outcome — 1 when the record corrects a local answer (local ≠ verified:
      what calibration and fine-tuning most need), 0.5 when it confirms one,
      0.25 when no local model answered;
    * feedback — trust in the verifier: human 1, audit 0.75, teacher 0.5;
    * reusability — ``min(1, (n − 1) / 4)`` with ``n`` = ``template_count``,
      the verified records sharing this input's template (numbers, versions
      and hashes masked): a template seen 5 times is fully reusable;
    * complexity — ``min(1, words / 50)`` of the input;
    * novelty — ``1 / n``: an input unlike any other record is worth keeping.
    """
    correct = record.local_correct
    outcome = 0.25 if correct is None else (0.5 if correct else 1.0)
    n = max(1, template_count)
    terms = {"outcome": outcome, "feedback": SOURCE_TRUST[record.source],
             "reusability": min(1.0, (n - 1) / 4), "complexity": min(1.0, len(record.input.split()) / 50),
             "novelty": 1.0 / n}
    return round(sum(WEIGHTS[k] * v for k, v in terms.items()), 6)


def observe_finished(memory, load_objective, payload: dict) -> bool:
    """Write the ``teacher`` record of one ``finished`` event, if it has one.

    ``load_objective``: a function returning the stored objective (``action``,
    ``input``, ``labels``, ``id``) or ``None`` (unknown: nothing written),
    called only when the event's attempts hold a record (most events, answered
    at their first tier, hold none: the daemon then reads nothing).
    ``payload``: the event's payload (``state``, ``attempts``, ``ts``: the
    record's date when the attempts carry none, else the objective's
    ``submitted_at``).  Idempotent
    (one teacher record per objective), so a re-delivered event writes
    nothing new.  Returns True when a record was written.
    """
    attempts = payload.get("attempts") or ()
    if payload.get("state") != "done" or _judged(attempts) is None:
        return False
    objective = load_objective()
    if objective is None:
        return False
    record = teacher_record(objective["action"], objective["input"], objective.get("labels") or (),
                            attempts, objective["id"], payload.get("ts") or objective.get("submitted_at"))
    return record is not None and memory.add(record)
