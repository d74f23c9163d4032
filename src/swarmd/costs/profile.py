"""Workload profiles: what a day of objectives looks like to the router.

A profile (YAML; the built-ins are in ``swarmd/costs/profiles/``)::

    name: medium
    description: one line
    sources: |                      # where every number comes from
      ...
    objectives_per_day: 1000
    actions:
      classify:
        share: 0.4                  # fraction of the objectives (shares sum to 1)
        tiers:                      # the tiers its requests visit, in cascade order
          LOCAL_FAST:    {tokens_in: 348, tokens_out: 1, escalation: 0.93}
          LOCAL_QUALITY: {tokens_in: 330, tokens_out: 2, escalation: 0.25}
          API_FALLBACK:  {tokens_in: 330, tokens_out: 2, escalation: 0.02}

Per tier: ``tokens_in``/``tokens_out`` per call (mean); ``escalation`` the
share of this tier's calls followed by a call at the next listed tier (at the
last tier: the share left unresolved, which costs nothing more); optional
``entry``, the calls per objective that *start* at this tier (default 1 for
the first listed tier, 0 for the others; above 0 later on when earlier tiers
were sometimes unavailable).  So, per objective of the action::

    visits[0] = entry[0]
    visits[k] = entry[k] + visits[k-1] × escalation[k-1]     (calls at tier k)
    ends[k]   = visits[k] × (1 − escalation[k])  (last tier: visits[k])
                                                 (objectives whose final call is at tier k)

:func:`from_ledger` measures a profile from ledger rows: per action and tier
the mean tokens, and the escalation and entry values that reproduce the
ledger's call counts exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import yaml

from swarmd.config import Config
from swarmd.costs.ledger_data import is_final

BUILTIN = ("light", "medium", "heavy")
_STEP_KEYS = {"tokens_in", "tokens_out", "escalation", "entry"}
_ACTION_KEYS = {"share", "tiers", "note"}
_TOP_KEYS = {"name", "description", "sources", "objectives_per_day", "actions"}


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the file, the key,
    what was expected and what was found."""


@dataclass(frozen=True)
class Step:
    """One tier of an action's cascade: mean ``tokens_in``/``tokens_out`` per
    call, ``escalation`` (0..1) and ``entry`` (calls per objective starting
    here) as in the module docstring."""

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


def _number(where: str, key: str, value, lo: float | None = 0.0, hi: float | None = None,
            strict_lo: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ProfileError(f"{where}: {key}: expected a number, found {value!r}")
    bad_lo = lo is not None and (value <= lo if strict_lo else value < lo)
    if bad_lo or (hi is not None and value > hi):
        rng = f"{'>' if strict_lo else '>='} {lo}" + (f" and <= {hi}" if hi is not None else "")
        raise ProfileError(f"{where}: {key}: expected a number {rng}, found {value!r}")
    return float(value)


def _unknown(where: str, key: str, data: dict, known: set) -> None:
    extra = sorted(set(data) - known)
    if extra:
        raise ProfileError(f"{where}: {key + '.' if key else ''}{extra[0]}: expected one of "
                           f"{', '.join(sorted(known))}, found unknown key {extra[0]!r}")


def parse_profile(data, where: str = "<profile>") -> Profile:
    """Validate a profile mapping (see the module docstring).  Raises
    :class:`ProfileError` naming ``where``, the key, expected and found."""
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: expected a mapping with objectives_per_day and actions, "
                           f"found {type(data).__name__}")
    _unknown(where, "", data, _TOP_KEYS)
    for key in ("objectives_per_day", "actions"):
        if key not in data:
            raise ProfileError(f"{where}: {key}: expected this key to be set, found nothing")
    per_day = _number(where, "objectives_per_day", data["objectives_per_day"], 0.0, strict_lo=True)
    raw_actions = data["actions"]
    if not isinstance(raw_actions, dict) or not raw_actions:
        raise ProfileError(f"{where}: actions: expected a non-empty mapping of action: {{share, tiers}}, "
                           f"found {raw_actions!r}")
    actions = {}
    for name, raw in raw_actions.items():
        key = f"actions.{name}"
        if not isinstance(raw, dict):
            raise ProfileError(f"{where}: {key}: expected a mapping with share and tiers, found {raw!r}")
        _unknown(where, key, raw, _ACTION_KEYS)
        share = _number(where, f"{key}.share", raw.get("share"), 0.0, 1.0)
        tiers = raw.get("tiers")
        if not isinstance(tiers, dict) or not tiers:
            raise ProfileError(f"{where}: {key}.tiers: expected a non-empty mapping of tier: "
                               f"{{tokens_in, tokens_out, escalation}}, found {tiers!r}")
        steps = []
        for i, (tier, s) in enumerate(tiers.items()):
            sk = f"{key}.tiers.{tier}"
            if not isinstance(s, dict):
                raise ProfileError(f"{where}: {sk}: expected a mapping with tokens_in, tokens_out, escalation, "
                                   f"found {s!r}")
            _unknown(where, sk, s, _STEP_KEYS)
            steps.append(Step(
                tier=str(tier),
                tokens_in=_number(where, f"{sk}.tokens_in", s.get("tokens_in")),
                tokens_out=_number(where, f"{sk}.tokens_out", s.get("tokens_out")),
                escalation=_number(where, f"{sk}.escalation", s.get("escalation", 0.0), 0.0, 1.0),
                entry=_number(where, f"{sk}.entry", s.get("entry", 1.0 if i == 0 else 0.0))))
        actions[str(name)] = ActionProfile(share, tuple(steps), str(raw.get("note") or ""))
    total = sum(a.share for a in actions.values())
    if abs(total - 1.0) > 0.001:
        raise ProfileError(f"{where}: actions: expected shares summing to 1, found {total:.4f}")
    return Profile(name=str(data.get("name") or Path(where).stem), objectives_per_day=per_day, actions=actions,
                   description=str(data.get("description") or ""), sources=str(data.get("sources") or ""))


def load_profile(name_or_path: str) -> Profile:
    """A built-in profile (:data:`BUILTIN`) or a YAML file.  Raises
    :class:`ProfileError` (also for a missing or unparsable file)."""
    if name_or_path in BUILTIN:
        text = resources.files("swarmd.costs").joinpath("profiles", f"{name_or_path}.yaml").read_text("utf-8")
        where = f"built-in profile {name_or_path}"
    else:
        try:
            text = Path(name_or_path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ProfileError(f"{name_or_path}: cannot read ({exc.strerror or exc}); built-in profiles: "
                               f"{', '.join(BUILTIN)}") from None
        where = name_or_path
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ProfileError(f"{where}{f':{mark.line + 1}' if mark else ''}: not valid YAML "
                           f"({getattr(exc, 'problem', exc)})") from None
    return parse_profile(data, where)


def check_against(profile: Profile, config: Config) -> None:
    """Raise :class:`ProfileError` when the profile names a tier the config
    does not define (its prices would be unknown)."""
    for name, action in profile.actions.items():
        for step in action.steps:
            if step.tier not in config.tiers:
                raise ProfileError(f"profile {profile.name}: actions.{name}.tiers.{step.tier}: expected a tier "
                                   f"of the config ({', '.join(config.tiers)}), found {step.tier!r}")


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
    objectives ÷ all objectives.  Per tier it visited (in ``escalation.chain``
    order): mean tokens per call over its rows, ``escalation`` = min(1,
    calls at the next tier ÷ calls here), ``entry`` = the calls at a tier not
    explained by escalation from the tier before, per objective; at the last
    tier ``escalation`` = its ``rejected`` rows ÷ its calls.  These reproduce
    each tier's call count exactly.  ``objectives_per_day`` = objectives ÷
    :func:`ledger_span_days`.  Raises :class:`ProfileError` for no rows.
    """
    if not rows:
        raise ProfileError(f"{name}: no ledger rows to measure")
    order = {t: i for i, t in enumerate(config.escalation.chain)}
    last_tier = {a: config.chain_from(a)[-1] for a in config.actions}
    stats: dict[str, dict] = {}
    for row in rows:
        a = stats.setdefault(row["action"], {"objectives": 0, "tiers": {}})
        t = a["tiers"].setdefault(row["tier"], {"calls": 0, "tin": 0, "tout": 0, "rejected": 0})
        t["calls"] += 1
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
            if i + 1 < len(tiers):
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
