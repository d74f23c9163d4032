"""Workload profiles: what a day of objectives looks like to the router.

A profile (YAML; the built-ins are in ``swarmd/costs/profiles/``) has ``name``,
``description``, ``sources`` (where every number comes from), ``objectives_per_day`` and,
per action, its ``share`` of the objectives (shares sum to 1) and the ``tiers`` its
requests visit in cascade order, each with mean ``tokens_in``/``tokens_out`` per call,
``escalation`` (the share of its calls followed by a call at the next listed tier; at the
last tier the share left unresolved) and optional ``entry`` (calls per objective that start
at this tier).  :meth:`ActionProfile.visits` and :meth:`ActionProfile.ends` give the calls
per objective at each tier and where objectives end.

:func:`load_profile` reads and validates one (:class:`ProfileError` lists every problem);
:func:`from_ledger` measures one from ledger rows, reproducing their call counts exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from swarmd.config import Config
from swarmd.costs.ledger_data import is_final
from swarmd.costs.pricing import UNPRICED_TIERS
from swarmd.validation import InputError, Invalid, Loc, Problem, parse_yaml, validate

BUILTIN = ("light", "medium", "heavy")


class ProfileError(InputError):
    """A profile that cannot be used: every problem, each naming the file,
    line (for YAML files), key, what was expected and what was found (see
    :class:`swarmd.validation.InputError`)."""


@dataclass(frozen=True)
class Step:
    """One tier of an action's cascade: mean ``tokens_in``/``tokens_out`` per
    call, ``escalation`` (0..1) and ``entry`` (calls per objective starting
    here), combined as docs/design.md, swarmd.costs.profile, shows."""

    tier: str
    tokens_in: float
    tokens_out: float
    escalation: float
    entry: float = 0.0


@dataclass(frozen=True)
class ActionProfile:
    """One action's ``share`` of the objectives (0..1) and its cascade ``steps``."""

    share: float
    steps: tuple[Step, ...]
    note: str = ""

    def visits(self) -> list[float]:
        """Expected calls per objective at each step."""
        out: list[float] = []
        for i, step in enumerate(self.steps):
            out.append(step.entry + (out[-1] * self.steps[i - 1].escalation if i else 0.0))
        return out

    def ends(self) -> list[float]:
        """Expected objectives (per objective) whose final call is at each step."""
        visits = self.visits()
        last = len(self.steps) - 1
        return [v if i == last else v * (1 - s.escalation) for i, (v, s) in enumerate(zip(visits, self.steps))]


@dataclass(frozen=True)
class Profile:
    """A workload: ``objectives_per_day`` split over ``actions`` by share.
    ``sources`` says where the numbers come from."""

    name: str
    objectives_per_day: float
    actions: dict[str, ActionProfile]
    description: str = ""
    sources: str = ""
    extra: dict = field(default_factory=dict)

    def scaled(self, objectives_per_day: float) -> "Profile":
        """The same mix, tokens and escalation rates at another volume."""
        return replace(self, objectives_per_day=float(objectives_per_day))

    def to_dict(self) -> dict:
        """The YAML/JSON form (as :func:`parse_profile` reads it)."""
        return {
            "name": self.name, "description": self.description, "sources": self.sources,
            "objectives_per_day": _num(self.objectives_per_day),
            "actions": {a: {"share": _num(p.share), **({"note": p.note} if p.note else {}), "tiers": {
                s.tier: {"tokens_in": _num(s.tokens_in), "tokens_out": _num(s.tokens_out),
                         "escalation": _num(s.escalation), **({"entry": _num(s.entry)} if
                                                              (s.entry != (1.0 if i == 0 else 0.0)) else {})}
                for i, s in enumerate(p.steps)}} for a, p in self.actions.items()},
        }


def _num(x: float) -> float | int:
    x = round(float(x), 6)
    return int(x) if x.is_integer() else x


# --------------------------------------------------------------------------- parsing

#: A finite number (ints accepted; booleans and strings refused).
_Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
_Fraction = Annotated[_Number, Field(ge=0, le=1)]
_Count = Annotated[_Number, Field(ge=0)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StepSpec(_Spec):
    """One tier of an action in a profile file (see the module docstring);
    ``entry`` ``None`` = 1 at the action's first tier, 0 at the others."""

    tokens_in: _Count
    tokens_out: _Count
    escalation: _Fraction = 0.0
    entry: _Count | None = None


class ActionSpec(_Spec):
    """One action of a profile file: its ``share`` and the ``tiers`` it
    visits, in cascade order (a non-empty mapping tier → :class:`StepSpec`)."""

    share: _Fraction
    tiers: dict[str, StepSpec] = Field(min_length=1)
    note: str | None = None


class ProfileSpec(_Spec):
    """A profile file (the module docstring shows one); shares sum to 1 (±0.001)."""

    name: str | None = None
    description: str | None = None
    sources: str | None = None
    objectives_per_day: Annotated[_Number, Field(gt=0)]
    actions: dict[str, ActionSpec] = Field(min_length=1)

    @field_validator("actions")
    @classmethod
    def _shares_sum_to_one(cls, actions: dict[str, ActionSpec]) -> dict[str, ActionSpec]:
        total = sum(a.share for a in actions.values())
        if abs(total - 1.0) > 0.001:
            raise Invalid(((), "shares summing to 1", f"shares summing to {total:.4f}"))
        return actions


def parse_profile(data: Any, where: str = "<profile>", lines: dict[Loc, int] | None = None) -> Profile:
    """Validate a profile mapping (see the module docstring) read from
    ``where`` (a file name; its stem is the default ``name``); ``lines``: key
    path → line, as :func:`swarmd.validation.parse_yaml` gives.  Raises
    :class:`ProfileError` listing every problem (file, line, key, expected,
    found)."""
    spec = validate(ProfileSpec, data, ProfileError, file=where, lines=lines)
    actions = {name: ActionProfile(a.share, tuple(
        Step(tier, s.tokens_in, s.tokens_out, s.escalation, (1.0 if i == 0 else 0.0) if s.entry is None else s.entry)
        for i, (tier, s) in enumerate(a.tiers.items())), a.note or "") for name, a in spec.actions.items()}
    return Profile(name=spec.name or Path(where).stem, objectives_per_day=spec.objectives_per_day, actions=actions,
                   description=spec.description or "", sources=spec.sources or "")


def load_profile(name_or_path: str) -> Profile:
    """A built-in profile (:data:`BUILTIN`) or a YAML file.  Raises
    :class:`ProfileError` (also for a missing or unparsable file)."""
    if name_or_path in BUILTIN:
        text = resources.files("swarmd.costs").joinpath("profiles", f"{name_or_path}.yaml").read_text("utf-8")
        where = f"built-in profile {name_or_path}"
    else:
        try:
            text = Path(name_or_path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ProfileError(name_or_path, "", f"a built-in profile ({', '.join(BUILTIN)}) or a readable "
                               "UTF-8 YAML file", getattr(exc, "strerror", None) or str(exc)) from None
        where = name_or_path
    doc = parse_yaml(text, where, ProfileError)
    return parse_profile(doc.data, where, doc.lines)


def check_against(profile: Profile, config: Config) -> None:
    """Raise :class:`ProfileError` when the profile names a tier the config
    does not define (its prices would be unknown); the ledger's unpriced
    tiers (:data:`~swarmd.costs.pricing.UNPRICED_TIERS`: the answer cache
    ``MEMORY``, trace replays ``TRACE``) are accepted at cost 0."""
    known = ", ".join([*config.tiers, *(t for t in UNPRICED_TIERS if t not in config.tiers)])
    bad = [Problem(f"profile {profile.name}", None, f"actions.{name}.tiers.{step.tier}", f"a tier of the config "
                   f"({known})", repr(step.tier)) for name, action in profile.actions.items()
           for step in action.steps if step.tier not in config.tiers and step.tier not in UNPRICED_TIERS]
    if bad:
        raise ProfileError(bad)


# --------------------------------------------------------------------------- measuring


def ledger_span_days(rows: list[dict]) -> float:
    """Days the rows cover: (last ts − first ts) / 86400, at least 1."""
    if not rows:
        return 1.0
    return max(1.0, (rows[-1]["ts"] - rows[0]["ts"]) / 86400)


def from_ledger(rows: list[dict], config: Config, name: str = "ledger") -> Profile:
    """The profile measured from ledger rows (oldest first).

    Per action: objectives = its final rows (:func:`swarmd.costs.ledger_data.is_final`;
    the number of calls at its first tier if it has none); share = its
    objectives ÷ all objectives.  Per tier it visited (the answer cache
    ``MEMORY`` and trace replays ``TRACE`` first, then ``escalation.chain``
    order): mean tokens per call over its rows, ``escalation`` = min(1,
    calls at the next tier ÷ calls here) (at ``MEMORY``/``TRACE``: their rows
    not accepted ÷ their rows, since a cache miss writes no row), ``entry`` = the calls at a tier not
    explained by escalation from the tier before, per objective; at the last
    tier ``escalation`` = its ``rejected`` rows ÷ its calls.  These reproduce
    each tier's call count exactly.  ``objectives_per_day`` = objectives ÷
    :func:`ledger_span_days`.  Raises :class:`ProfileError` for no rows.
    """
    if not rows:
        raise ProfileError(name, "", "ledger rows to measure", "none")
    order = {t: i for i, t in enumerate((*UNPRICED_TIERS, *config.escalation.chain))}
    last_tier = {a: config.chain_from(a)[-1] for a in config.actions}
    stats: dict[str, dict] = {}
    for row in rows:
        a = stats.setdefault(row["action"], {"objectives": 0, "tiers": {}})
        t = a["tiers"].setdefault(row["tier"], {"calls": 0, "tin": 0, "tout": 0, "rejected": 0, "accepted": 0})
        t["calls"] += 1
        t["accepted"] += row["outcome"] == "accepted"
        t["tin"] += int(row["tokens_in"] or 0)
        t["tout"] += int(row["tokens_out"] or 0)
        t["rejected"] += row["outcome"] == "rejected"
        a["objectives"] += is_final(row, last_tier)
    seen = list(dict.fromkeys(r["tier"] for r in rows))
    actions = {}
    all_objectives = 0
    for action, a in stats.items():
        tiers = sorted(a["tiers"], key=lambda t: (order.get(t, len(order)), seen.index(t)))
        calls = [a["tiers"][t]["calls"] for t in tiers]
        objectives = a["objectives"] or calls[0]
        all_objectives += objectives
        steps = []
        for i, tier in enumerate(tiers):
            t = a["tiers"][tier]
            arriving = calls[i - 1] * steps[i - 1].escalation if i else 0.0
            if tier in UNPRICED_TIERS and i + 1 < len(tiers):
                escalation = 1 - t["accepted"] / t["calls"]   # a cache miss writes no row: the next tier's entry
            elif i + 1 < len(tiers):
                escalation = min(1.0, calls[i + 1] / calls[i])
            else:
                escalation = t["rejected"] / t["calls"]
            steps.append(Step(tier, t["tin"] / t["calls"], t["tout"] / t["calls"], escalation,
                              entry=max(0.0, calls[i] - arriving) / objectives))
        actions[action] = (objectives, steps)
    span = ledger_span_days(rows)
    profile_actions = {a: ActionProfile(n / all_objectives, tuple(steps)) for a, (n, steps) in actions.items()}
    return Profile(name=name, objectives_per_day=all_objectives / span, actions=profile_actions,
                   description=f"measured from {len(rows)} ledger rows over {span:.2f} day(s)",
                   sources="measured: tokens per call, escalation and entry per action and tier, "
                           "from the ledger rows (swarmd.costs.profile.from_ledger)",
                   extra={"objectives": all_objectives, "span_days": span})
