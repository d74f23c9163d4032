"""How honest the quality gate is, measured on verified outcomes (``swarmctl memory stats``).

Per (action, label set, model, prompt form) of the judged local answers:

* ``verified``: verified records judging that model's answer;
* ``accepted``: those whose answer the gate had accepted;
* ``false_accept``: share of the accepted answers that were wrong (``None`` if none);
* ``false_accept_upper``: the upper end of its 95% Wilson score interval
  (:func:`wilson_upper`; 1.0 with no accepted answer);
* ``coverage``: ``accepted / verified`` (teacher records are all rejected answers, so
  with few human or audit records this under-states local coverage);
* ``threshold``: the acceptance threshold in use (learned, else configured).

Tier ``MEMORY`` rows (models ``exact``, ``template``) are the answer cache's: there
``1 − false_accept`` is its hit precision.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from swarmd.memory.records import PROMPT_FORM_SQL, Memory

#: two-sided 95%: the standard normal quantile 0.975
Z95 = 1.959963984540054


def wilson_upper(errors: float, n: float, z: float = Z95) -> float:
    """Upper end of the Wilson score interval for a binomial proportion
    ``errors / n`` (E. B. Wilson, "Probable inference, the law of succession,
    and statistical inference", JASA 22 (1927) 209-212; recommended over the
    normal interval by Brown, Cai & DasGupta, Statistical Science 16 (2001)
    101-133)::

        (p + z²/2n + z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n),   p = errors / n

    ``z`` = 1.96 gives the two-sided 95% interval; ``errors`` and ``n`` may be
    fractional (an effective sample size).  Returns 1.0 when ``n`` is 0.
    Raises ``ValueError`` unless ``0 <= errors <= n``.
    """
    if not 0 <= errors <= n:
        raise ValueError(f"expected 0 <= errors <= n, found errors={errors}, n={n}")
    if n == 0:
        return 1.0
    p, z2 = errors / n, z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z2 / n))


@dataclass
class GateStats:
    """One row of ``swarmctl memory stats`` (see the module docstring)."""

    action: str
    labels: str
    model: str
    prompt: str
    tier: str | None
    verified: int
    accepted: int
    wrong_accepted: int
    false_accept: float | None
    false_accept_upper: float
    coverage: float
    threshold: float | None

    def to_json(self) -> dict:
        """The JSON shape of ``swarmctl memory stats --json`` (rounded to 4 places)."""
        out = asdict(self)
        for key in ("false_accept", "false_accept_upper", "coverage", "threshold"):
            if out[key] is not None:
                out[key] = round(out[key], 4)
        return out


def gate_stats(memory: Memory, thresholds=None) -> list[GateStats]:
    """Per (action, label set, model, prompt form) statistics of the judged local answers.

    ``thresholds``: ``(action, label_key, model, prompt form) → threshold`` in use (the
    active learned ones); missing keys get ``None``.  Records without a judged
    local answer are left out.
    """
    thresholds = thresholds or {}
    with memory.lock:
        rows = memory.conn.execute(
            f"SELECT action, label_key, model, {PROMPT_FORM_SQL} AS form, MIN(local_tier), COUNT(*), "
            "SUM(local_accepted = 1), SUM(local_accepted = 1 AND (answer IS NULL OR answer != local_answer)) "
            "FROM verified_outcomes WHERE local_answer IS NOT NULL AND model IS NOT NULL "
            "GROUP BY action, label_key, model, form ORDER BY action, label_key, model, form").fetchall()
    out = []
    for action, key, model, form, tier, n, accepted, wrong in rows:
        accepted, wrong = int(accepted or 0), int(wrong or 0)
        out.append(GateStats(action, key, model, form, tier, n, accepted, wrong,
                             wrong / accepted if accepted else None, wilson_upper(wrong, accepted),
                             accepted / n if n else 0.0, thresholds.get((action, key, model, form))))
    return out
