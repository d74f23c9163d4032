"""Agent objectives with execution traces: follow a trace, or learn one.

:func:`run_with_traces` is how a worker runs an ``agent`` objective:

1. **Follower** — the objective's goal matches a stored trace
   (:meth:`swarmd.memory.traces.TraceStore.match`: similar goal, compatible
   parameters) that may be followed (confidence ≥ ``traces.follow_threshold``,
   success rate > ``traces.min_success_rate``): :func:`replay` runs its steps
   with the goal's parameter values in the slots (extracted deterministically:
   no model is called; only free text the goal gives without quotes is
   copied from it by the small model of ``actions.fill_slot``,
   :func:`fill_missing`), each step through the governor and its sandbox
   (:func:`swarmd.governor.execute.run_tool`) exactly as the agent loop runs
   a model's step, and checks each step's validations.  All pass: the
   objective is ``done`` with the trace's answer, filled; cost 0.
2. A replay that fails a validation, or whose step the governor denies,
   hands over to the **learner** from that step: the agent loop continues
   with the replayed steps in its transcript (a denial counts towards
   ``governor.max_denials`` as in the loop).  A failed precondition means the
   trace does not apply: the learner starts from nothing, no penalty.  An
   ``ask`` parks the objective as the loop does; the resumed run is the learner's.
3. **Learner** — the planner (:mod:`swarmd.workers.planner`) turns the goal
   into steps; without a plan the objective ends ``unresolved`` at once with
   the planner's reason.  The agent loop runs with the plan.  When it ends
   ``done`` and its last answer came from a tier able to plan (the chain of
   ``actions.plan``), the run is learned as a trace
   (:func:`swarmd.memory.traces.learn`).

What happened to traces travels in :attr:`AgentOutcome.trace` (``{"follow":
{"id", "version", "ok", "saved_usd"}, "learn": <trace JSON>,
"min_similarity": x, "min_embedding_similarity": y}``) for the daemon to apply in its store transaction
(:meth:`TraceStore.apply`); workers only read traces.  Ledger marking: every
attempt dict carries ``mode`` (``learner``/``follower``); a replay adds one
attempt of tier :data:`TRACE_TIER`, provider ``trace``, model ``<id>@v<version>``,
cost 0.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

from swarmd.config import Config
from swarmd.governor import Decision, Governor
from swarmd.governor.execute import run_tool
from swarmd.memory.traces import (Match, NotLearnable, StoredTrace, TraceError, TraceStore, check, fill, learn,
                                  quote_span)
from swarmd.router import Router
from swarmd.workers.agent import AgentOutcome, record_run, run_agent
from swarmd.workers.planner import PLAN_ACTION, make_plan

#: the ledger tier of a replay (no model call)
TRACE_TIER = "TRACE"
#: the action whose (small) model copies free-text slot values from a goal
FILL_ACTION = "fill_slot"
#: most workspace entries listed before a learner run (for preconditions)
_LIST_LIMIT = 2000


@dataclass
class Replay:
    """How a replay ended: ``status`` ``done`` | ``failed`` (a validation)
    | ``denied`` | ``ask`` | ``not_applicable`` (a precondition);
    ``transcript``: the steps that ran (agent-loop shape; a failed step has
    ``check``); ``answer`` (done); ``reason``; ``pending`` (ask: ``(tool,
    args, decision)``); ``latency_ms``."""

    status: str
    transcript: list[dict] = field(default_factory=list)
    answer: str | None = None
    reason: str | None = None
    pending: tuple[str, dict, Decision] | None = None
    latency_ms: float = 0.0


def replay(stored: StoredTrace, values: dict[str, str], governor: Governor, workspace: Path | str,
           objective_id: str, output_chars: int) -> Replay:
    """Run ``stored``'s steps with ``values`` (parameter name → value) in
    ``workspace``: preconditions first, then each step through the governor
    (:func:`run_tool`), then its validations in order (an ``output_matches``
    adds its captures to the slot values).  Stops at the first step not
    allowed or not passing; a shell step whose filled command splits into
    another number of words than the learned one (a value with spaces where
    the learner's had none, unquoted) does not apply.  Never raises for tool failures."""
    start = time.perf_counter()
    trace, vals, ws = stored.trace, dict(values), str(workspace)
    transcript: list[dict] = []

    def end(status: str, **kw) -> Replay:
        return Replay(status, transcript, latency_ms=(time.perf_counter() - start) * 1000, **kw)

    for pre in trace.preconditions:
        why = check(pre, "", None, ws, vals)
        if why:
            return end("not_applicable", reason=f"precondition failed: {why}")
    learned = {p.name: p.example for p in trace.params}
    for n, step in enumerate(trace.steps, 1):
        try:
            args = fill(step.args, vals)
        except KeyError as exc:
            return end("failed", reason=f"step {n}: no value for slot {exc}")
        if step.tool == "shell" and _words(args["command"]) != _words(fill(step.args, {**vals, **learned})["command"]):
            return end("not_applicable", reason=f"step {n}: the values change the command's words")
        res = run_tool(governor, step.tool, args, ws, objective_id=objective_id)
        if res.decision.decision == "ask":
            return end("ask", reason=f"ask: {res.decision.rule} {res.decision.reason}",
                       pending=(step.tool, args, res.decision))
        recorded = record_run(transcript, n, step.tool, args, res, output_chars)
        if not res.ran:
            return end("denied", reason=f"denied: {res.decision.rule} {res.decision.reason}")
        for validation in step.expect:
            why = check(validation, res.output, res.exit_code, ws, vals)
            if why:
                recorded["check"] = f"{validation.type}: {why}"
                return end("failed", reason=f"step {n} ({step.tool}) {validation.type}: {why}")
    try:
        return end("done", answer=fill(trace.answer, vals))
    except KeyError as exc:
        return end("failed", reason=f"answer: no value for slot {exc}")


def _words(command: str) -> int:
    """How many shell words ``command`` has (-1 when it does not split)."""
    try:
        return len(shlex.split(command))
    except ValueError:
        return -1


def list_workspace(workspace: Path | str, limit: int = _LIST_LIMIT) -> list[str]:
    """Workspace-relative paths of files and directories (at most ``limit``, sorted)."""
    root, out = str(workspace), []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            out.append(name if rel == "." else os.path.join(rel, name))
            if len(out) >= limit:
                return sorted(out)
    return sorted(out)


def _mark(attempts: list[dict], mode: str) -> list[dict]:
    for a in attempts:
        a["mode"] = mode
    return attempts


def _trace_attempt(stored: StoredTrace, rep: Replay) -> dict:
    return {"tier": TRACE_TIER, "provider": "trace", "model": f"{stored.id}@v{stored.version}",
            "answer": rep.answer, "confidence": stored.confidence, "tokens_in": 0, "tokens_out": 0,
            "cost_usd": 0.0, "latency_ms": rep.latency_ms, "outcome": "accepted" if rep.status == "done" else "rejected",
            "error": None if rep.status == "done" else rep.reason, "ts": time.time(), "scores": None,
            "mode": "follower"}


def run_with_traces(objective: dict, router: Router, governor: Governor, config: Config, workspace: Path,
                    traces: TraceStore | None, resume: dict | None = None) -> AgentOutcome:
    """Run (or resume) an ``agent`` objective as follower or learner (module
    docstring).  ``traces``: the trace store to match against (``None`` or
    ``traces.enabled: false``: always the learner).  Returns the
    :class:`AgentOutcome`, with ``trace`` set when traces were followed or
    learned and ``result["mode"]`` = ``follower`` | ``learner``.  Never
    raises for model, tool or trace-store failures (logged)."""
    cfg, tcfg = config.governor, config.traces
    if resume is not None:
        return _learned(run_agent(objective, router, governor, cfg, workspace, resume=resume), objective, config)
    start: dict = {"learn": {"pre_existing": list_workspace(workspace)}}
    follow_event = None
    match, start_attempts = None, []
    if traces is not None and tcfg.enabled:
        try:
            match = traces.match(objective["input"], tcfg.min_similarity, tcfg.follow_threshold,
                                 tcfg.min_success_rate, tcfg.min_embedding_similarity)
            if match is not None and match.missing:
                match, start_attempts = fill_missing(objective, match, router, traces, config)
        except (sqlite3.Error, TraceError) as exc:
            logger.warning("objective {}: trace store unusable, running the learner: {}", objective["id"], exc)
    fill_cost = sum(a["cost_usd"] for a in start_attempts)
    if match is not None and not match.follow:
        logger.info("objective {}: trace {} v{} matches (similarity {:.2f}) but is not followed: {}",
                    objective["id"], match.stored.id, match.stored.version, match.similarity, match.why)
    if match is not None and match.follow:
        stored = match.stored
        rep = replay(stored, match.values, governor, workspace, objective["id"], cfg.output_chars)
        attempt = _trace_attempt(stored, rep)
        logger.info("objective {}: followed trace {} v{}: {}{}", objective["id"], stored.id, stored.version,
                    rep.status, f" ({rep.reason})" if rep.reason else "")
        if rep.status == "done":
            result = {"answer": rep.answer, "confidence": stored.confidence, "tier": TRACE_TIER,
                      "model": attempt["model"], "cost_usd": fill_cost, "escalations": 0, "reason": None,
                      "status": "done", "steps": len(rep.transcript), "mode": "follower",
                      "trace": attempt["model"]}
            event = {"follow": {"id": stored.id, "version": stored.version, "ok": True,
                                "saved_usd": max(0.0, stored.trace.cost_usd - fill_cost)}}
            return AgentOutcome("done", result, start_attempts + [attempt], {"transcript": rep.transcript}, None,
                                event)
        if rep.status == "ask":
            out = AgentOutcome("awaiting_approval", {"status": "awaiting_approval", "reason": rep.reason,
                                                     "answer": None, "cost_usd": fill_cost, "mode": "follower",
                                                     "pending": {"tool": rep.pending[0], "args": rep.pending[1],
                                                                 "rule": rep.pending[2].rule,
                                                                 "reason": rep.pending[2].reason}},
                               start_attempts + [attempt],
                               {"transcript": rep.transcript, "steps": len(rep.transcript), "cost_usd": fill_cost,
                                **start},
                               rep.pending)
            return out
        if rep.status in ("failed", "denied"):
            follow_event = {"follow": {"id": stored.id, "version": stored.version, "ok": False}}
            start.update(transcript=rep.transcript, steps=len(rep.transcript),
                         denials=1 if rep.status == "denied" else 0)
            if rep.status == "denied" and cfg.max_denials <= 1:
                result = {"answer": None, "confidence": None, "tier": TRACE_TIER, "model": attempt["model"],
                          "cost_usd": fill_cost, "escalations": 0, "reason": rep.reason, "status": "failed",
                          "steps": len(rep.transcript), "mode": "follower", "trace": attempt["model"]}
                return AgentOutcome("failed", result, start_attempts + [attempt], {"transcript": rep.transcript},
                                    None, follow_event)
        start_attempts = start_attempts + [attempt]
    plan = make_plan(objective, router)
    plan_attempts = _mark(plan.attempts, "learner")
    if plan.steps is None:
        result = {"answer": None, "confidence": None, "tier": plan.tier, "model": plan.model,
                  "cost_usd": fill_cost + plan.cost_usd, "escalations": plan.escalations, "reason": plan.reason,
                  "status": "unresolved", "steps": 0, "mode": "learner"}
        return AgentOutcome("unresolved", result, start_attempts + plan_attempts, {}, None, follow_event)
    start.update(plan=plan.steps, cost_usd=fill_cost + plan.cost_usd, escalations=plan.escalations)
    out = run_agent(objective, router, governor, cfg, workspace, start=start)
    out.attempts = start_attempts + plan_attempts + _mark(out.attempts, "learner")
    out.trace = follow_event
    return _learned(out, objective, config)


def fill_missing(objective: dict, match: Match, router: Router, traces: TraceStore,
                 config: Config) -> tuple[Match | None, list[dict]]:
    """Find the values of ``match.missing`` (quoted parameters the goal shows
    without quotes) with the :data:`FILL_ACTION` action (the small model
    copies the span of the goal; see ``llm_config.yaml``), quote each span
    (:func:`~swarmd.memory.traces.quote_span`: it must be in the goal
    verbatim and safe) and match the quoted goal again at the full
    thresholds.  Returns the new :class:`Match` of the same trace (or
    ``None``) and the router's attempts (dicts marked ``action`` and ``mode``
    ``follower``, for the ledger)."""
    tcfg, goal, attempts = config.traces, objective["input"], []
    if FILL_ACTION not in config.actions:
        return None, attempts
    for param in match.missing:
        routed = router.route(FILL_ACTION, f"Example goal: {match.stored.trace.goal} Example value: "
                              f"{param.example} Goal: {goal}", objective_id=objective["id"],
                              request_id=objective["id"], max_cost_usd=objective.get("max_cost_usd"))
        attempts += [{**a, "action": FILL_ACTION, "mode": "follower"} for a in routed.attempts_json()]
        lines = (routed.answer or "").strip().splitlines()
        quoted = quote_span(goal, lines[0].strip().strip("'\"`")) if routed.status == "accepted" and lines else None
        if quoted is None:
            logger.info("objective {}: no value for {} of trace {} ({}: {!r})", objective["id"], param.name,
                        match.stored.id, routed.status, routed.answer)
            return None, attempts
        goal = quoted
    again = traces.match(goal, tcfg.min_similarity, tcfg.follow_threshold, tcfg.min_success_rate,
                         tcfg.min_embedding_similarity)
    if again is None or again.missing or again.stored.id != match.stored.id:
        return None, attempts
    return again, attempts


def _learned(out: AgentOutcome, objective: dict, config: Config) -> AgentOutcome:
    """``out`` with ``result["mode"] = "learner"`` and, when it ended ``done``
    from a tier able to plan, the learned trace in ``out.trace["learn"]``."""
    out.result["mode"] = "learner"
    strong = config.chain_from(PLAN_ACTION) if PLAN_ACTION in config.actions else []
    if out.state != "done" or not config.traces.enabled or out.result.get("tier") not in strong:
        return out
    info = out.loop.get("learn") or {}
    try:
        trace = learn(objective["input"], out.loop.get("transcript", []), out.result.get("answer") or "",
                      pre_existing=set(info.get("pre_existing") or ()), model=out.result.get("model"),
                      tier=out.result.get("tier"), cost_usd=out.result.get("cost_usd") or 0.0,
                      tags=objective.get("tags") or ())
    except (NotLearnable, TraceError) as exc:
        logger.info("objective {}: not learned as a trace: {}", objective["id"], str(exc).replace("\n", "; "))
        return out
    out.trace = {**(out.trace or {}), "learn": trace.model_dump(by_alias=True),
                 "min_similarity": config.traces.min_similarity,
                 "min_embedding_similarity": config.traces.min_embedding_similarity}
    return out
