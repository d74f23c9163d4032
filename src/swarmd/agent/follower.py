"""Agent objectives with execution traces: follow a trace, or learn one.

:func:`run_with_traces` runs an ``agent`` objective: a stored trace that
matches the goal (:meth:`swarmd.agent.traces.TraceStore.match`) and may be
followed is replayed without a model (:func:`replay`; free text for unquoted
slots from the ``fill_slot`` model), each step through the governor and its
sandbox, each validation checked; a supervised replay is verified by the
learner tier (:func:`verify`).  A failed validation or denial hands over to the
learner from that step; otherwise the learner plans (:mod:`swarmd.agent.planner`)
and runs the agent loop, and a ``done`` run from a tier able to plan becomes a
trace.  Every call uses the objective's ``strategy``; a call that cannot be
served is that step's failure, never an exception.  Returns the trace update
in :attr:`AgentOutcome.trace` for the daemon; attempts carry the ledger ``mode``.
The whole protocol: docs/design.md (swarmd.agent.follower).
"""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

from swarmd.config import FILL_ACTION, PLAN_ACTION, VERIFY_ACTION, Config
from swarmd.costs.ledger import FOLLOWER, LEARNER, SUPERVISED, TRACE_TIER
from swarmd.governor import Decision, Governor
from swarmd.governor.execute import run_tool
from swarmd.agent.traces import (FileExists, JsonSchema, Match, NotLearnable, OutputContains, OutputMatches,
                                  StoredTrace, TraceError, TraceStore, Validation, check, fill, learn, quote_span)
from swarmd.router import RequestError, Router
from swarmd.agent.loop import CANCELLED, AgentOutcome, ShouldStop, record_run, route_for, run_agent, why_unanswered
from swarmd.agent.planner import make_plan

#: characters of a replayed step's arguments and of its output shown to the verifier: enough for
#: the commands and the summary lines of bench/traces.py's chores, while one verification stays a
#: small fraction of a learner run (that bench reports both)
VERIFY_ARGS_CHARS, VERIFY_OUTPUT_CHARS = 120, 120
#: most workspace entries listed before a learner run (for preconditions)
_LIST_LIMIT = 2000


@dataclass
class Replay:
    """How a replay ended: ``status`` ``done`` | ``failed`` (a validation)
    | ``denied`` | ``ask`` | ``not_applicable`` (a precondition) |
    ``cancelled`` (``should_stop`` said stop before a step);
    ``transcript``: the steps that ran (agent-loop shape; a failed step has
    ``check``, a step's passed validations are listed in ``checked``);
    ``answer`` (done); ``reason``; ``pending`` (ask: ``(tool, args,
    decision)``); ``latency_ms``."""

    status: str
    transcript: list[dict] = field(default_factory=list)
    answer: str | None = None
    reason: str | None = None
    pending: tuple[str, dict, Decision] | None = None
    latency_ms: float = 0.0


def replay(stored: StoredTrace, values: dict[str, str], governor: Governor, workspace: Path | str,
           objective_id: str, output_chars: int, should_stop: ShouldStop | None = None) -> Replay:
    """Run ``stored``'s steps with ``values`` (parameter name → value) in
    ``workspace``: preconditions first, then each step through the governor
    (:func:`run_tool`), then its validations in order (an ``output_matches``
    adds its captures to the slot values).  Stops at the first step not
    allowed or not passing; a shell step whose filled command splits into
    another number of words than the learned one (a value with spaces where
    the learner's had none, unquoted) does not apply.  ``should_stop`` is
    asked before each step (``cancelled``: it does not run).  Never raises for tool failures."""
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
        if should_stop is not None and should_stop():
            return end(CANCELLED, reason=f"cancelled while running: stopped before step {n} ({step.tool})")
        res = run_tool(governor, step.tool, args, ws, objective_id=objective_id)
        if res.decision.decision == "ask":
            return end("ask", reason=f"ask: {res.decision.rule} {res.decision.reason}",
                       pending=(step.tool, args, res.decision))
        recorded = record_run(transcript, n, step.tool, args, res, output_chars)
        if not res.ran:
            return end("denied", reason=f"denied: {res.decision.rule} {res.decision.reason}")
        passed = []
        for validation in step.expect:
            known = set(vals)
            why = check(validation, res.output, res.exit_code, ws, vals)
            if why:
                recorded["check"] = f"{validation.type}: {why}"
                return end("failed", reason=f"step {n} ({step.tool}) {validation.type}: {why}")
            passed.append(_passed(validation, vals, known))
        if passed:
            recorded["checked"] = "; ".join(passed)
    try:
        return end("done", answer=fill(trace.answer, vals))
    except KeyError as exc:
        return end("failed", reason=f"answer: no value for slot {exc}")


def _passed(validation: Validation, values: dict[str, str], known: set[str]) -> str:
    """A passed validation in a few words (``known``: the slot names before
    it ran; an ``output_matches`` shows the values it captured)."""
    if isinstance(validation, FileExists):
        return f"file_exists {fill(validation.path, values)}"
    if isinstance(validation, OutputContains):
        return f"output_contains {fill(validation.text, values)!r}"
    if isinstance(validation, OutputMatches):
        return "output_matches " + ", ".join(f"{k}={v!r}" for k, v in values.items() if k not in known)
    if isinstance(validation, JsonSchema):
        return "json_schema" + (f" {fill(validation.path, values)}" if validation.path else "")
    return f"exit_code {validation.equals}"


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


# --------------------------------------------------------------------------- verification


@dataclass
class Verification:
    """The learner tier's verdict on a supervised replay: ``status``
    ``verified`` | ``rejected`` (it answered no) | ``unverified`` (no usable
    verdict: ``reason`` says why); ``attempts``: the router's attempts
    (dicts, ``action`` :data:`VERIFY_ACTION`, ``mode`` ``supervised``,
    each with its ``cost_usd``)."""

    status: str
    reason: str | None = None
    attempts: list[dict] = field(default_factory=list)


def verify_input(goal: str, transcript: list[dict], answer: str) -> str:
    """The verifier's input: the goal, the replay's answer, then each step:
    tool and arguments (a single argument's value alone, e.g. a shell
    command; else their JSON) cut at :data:`VERIFY_ARGS_CHARS`, the checks it
    passed (its exit code when no check covers it), its output cut at
    :data:`VERIFY_OUTPUT_CHARS`.  The answer comes before the steps, so the
    action's ``input_max_chars`` cuts steps, never it."""
    steps = []
    for s in transcript:
        args = s["args"]
        shown = next(iter(args.values())) if len(args) == 1 else json.dumps(args, ensure_ascii=False)
        checked = s.get("checked") or ""
        status = f"checks ok: {checked}" if checked.startswith("exit_code") or "; exit_code " in checked else \
            f"exit {s.get('exit_code')}" + (f"; checks ok: {checked}" if checked else "")
        out = " ".join((s.get("output") or "").split())[:VERIFY_OUTPUT_CHARS]
        steps.append(f"{s['n']}. {s['tool']}: {str(shown)[:VERIFY_ARGS_CHARS]}; {status}; output: {out or '(none)'}")
    return f"Goal: {goal}\nAnswer: {answer}\nSteps: " + " ".join(steps)


def verify(objective: dict, rep: Replay, router: Router) -> Verification:
    """Ask the :data:`VERIFY_ACTION` action (the learner tier; see
    ``llm_config.yaml``) whether ``rep`` — a replay that passed every step —
    met ``objective``'s goal: one ``yes_no`` call over :func:`verify_input`,
    with the objective's strategy and ``max_cost_usd``.  ``yes`` verifies,
    ``no`` rejects; anything else (a reply the gate rejects, no tier
    answering, a budget refusal, a strategy the action cannot serve) leaves
    it unverified.  Never raises for model failures."""
    try:
        routed = route_for(router, VERIFY_ACTION, verify_input(objective["input"], rep.transcript, rep.answer or ""),
                           objective)
    except RequestError as exc:
        return Verification("unverified", f"cannot verify: {exc}")
    attempts = [{**a, "action": VERIFY_ACTION, "mode": SUPERVISED} for a in routed.attempts_json()]
    if routed.status != "accepted":
        return Verification("unverified", f"no usable verdict: {why_unanswered(routed)}", attempts)
    if routed.answer == "yes":
        return Verification("verified", None, attempts)
    return Verification("rejected", f"{routed.tier}/{routed.model} judged the answer wrong", attempts)


# --------------------------------------------------------------------------- running an objective


def _trace_attempt(stored: StoredTrace, rep: Replay, mode: str, error: str | None) -> dict:
    return {"tier": TRACE_TIER, "provider": "trace", "model": f"{stored.id}@v{stored.version}",
            "answer": rep.answer, "confidence": stored.confidence, "tokens_in": 0, "tokens_out": 0,
            "cost_usd": 0.0, "latency_ms": rep.latency_ms, "outcome": "rejected" if error else "accepted",
            "error": error, "ts": time.time(), "scores": None, "mode": mode}


def _match(traces: TraceStore, goal: str, config: Config) -> Match | None:
    """:meth:`TraceStore.match` with the ``traces`` settings (supervised
    following only when the config has :data:`VERIFY_ACTION`)."""
    t = config.traces
    return traces.match(goal, t.min_similarity, t.follow_threshold, t.min_success_rate, t.min_embedding_similarity,
                        t.supervise_from if VERIFY_ACTION in config.actions else None)


def run_with_traces(objective: dict, router: Router, governor: Governor, config: Config, workspace: Path,
                    traces: TraceStore | None, resume: dict | None = None,
                    should_stop: ShouldStop | None = None) -> AgentOutcome:
    """Run (or resume) an ``agent`` objective as follower or learner (module
    docstring).  ``traces``: the trace store to match against (``None`` or
    ``traces.enabled: false``: always the learner).  Returns the
    :class:`AgentOutcome`, with ``trace`` set when traces were followed or
    learned and ``result["mode"]`` = ``follower`` | ``supervised`` |
    ``learner``.  ``should_stop``: the job's "was it cancelled?", asked before
    each replayed step, the plan and each step of the loop
    (:func:`swarmd.agent.loop.run_agent`): the outcome is then ``cancelled``.
    Never raises for model, tool or trace-store failures (logged)."""
    if resume is not None:
        return _learned(run_agent(objective, router, governor, config.governor, workspace, resume=resume,
                                  should_stop=should_stop), objective, config)
    start: dict = {"learn": {"pre_existing": list_workspace(workspace)}}
    follow_event, attempts = None, []
    match = None
    if traces is not None and config.traces.enabled:
        try:
            match = _match(traces, objective["input"], config)
            if match is not None and match.missing:
                match, attempts = fill_missing(objective, match, router, traces, config)
        except (sqlite3.Error, TraceError) as exc:
            logger.warning("objective {}: trace store unusable, running the learner: {}", objective["id"], exc)
    if match is not None and not match.follow:
        logger.info("objective {}: trace {} v{} matches (similarity {:.2f}) but is not followed: {}",
                    objective["id"], match.stored.id, match.stored.version, match.similarity, match.why)
    if match is not None and match.follow:
        ended, follow_event, attempts = _follow(objective, match, router, governor, config, workspace, start,
                                                attempts, should_stop)
        if ended is not None:
            return ended
    spent = sum(a["cost_usd"] for a in attempts)
    if should_stop is not None and should_stop():
        result = {"answer": None, "status": CANCELLED, "cost_usd": spent, "steps": len(start.get("transcript", ())),
                  "reason": "cancelled while running: stopped before the plan", "mode": LEARNER}
        return AgentOutcome(CANCELLED, result, attempts, {}, None, follow_event)
    plan = make_plan(objective, router)
    plan_attempts = _mark(plan.attempts, LEARNER)
    if plan.steps is None:
        result = {"answer": None, "confidence": None, "tier": plan.tier, "model": plan.model,
                  "cost_usd": spent + plan.cost_usd, "escalations": plan.escalations, "reason": plan.reason,
                  "status": "unresolved", "steps": 0, "mode": LEARNER}
        return AgentOutcome("unresolved", result, attempts + plan_attempts, {}, None, follow_event)
    start.update(plan=plan.steps, cost_usd=spent + plan.cost_usd, escalations=plan.escalations)
    out = run_agent(objective, router, governor, config.governor, workspace, start=start, should_stop=should_stop)
    out.attempts = attempts + plan_attempts + _mark(out.attempts, LEARNER)
    out.trace = follow_event
    return _learned(out, objective, config)


def _follow(objective: dict, match: Match, router: Router, governor: Governor, config: Config, workspace: Path,
            start: dict, attempts: list[dict],
            should_stop: ShouldStop | None = None) -> tuple[AgentOutcome | None, dict | None, list[dict]]:
    """Replay ``match`` (supervised when ``match.supervised``); ``attempts``:
    the slot fills made for it.  Returns ``(outcome, None, attempts)`` when
    the objective ends here (done, parked, cancelled, or failed by a denial
    with no denial to spare), else ``(None, follow event or None, attempts)`` with
    ``start`` updated for the learner to continue from the replayed steps."""
    cfg, stored, oid = config.governor, match.stored, objective["id"]
    mode = SUPERVISED if match.supervised else FOLLOWER
    rep = replay(stored, match.values, governor, workspace, oid, cfg.output_chars, should_stop)
    verdict = verify(objective, rep, router) if rep.status == "done" and match.supervised else None
    not_verified = verdict is not None and verdict.status != "verified"
    attempt = _trace_attempt(stored, rep, mode, f"not verified: {verdict.reason}" if not_verified
                             else None if rep.status == "done" else rep.reason)
    attempts = _mark(attempts, mode) + [attempt] + (verdict.attempts if verdict else [])
    spent = sum(a["cost_usd"] for a in attempts)
    logger.info("objective {}: followed trace {} v{}{}: {}{}", oid, stored.id, stored.version,
                " (supervised)" if match.supervised else "", rep.status,
                f", {verdict.status}" if verdict else "", f" ({attempt['error']})" if attempt["error"] else "")
    if rep.status == "done" and not not_verified:
        result = {"answer": rep.answer, "confidence": stored.confidence, "tier": TRACE_TIER,
                  "model": attempt["model"], "cost_usd": spent, "escalations": 0, "reason": None,
                  "status": "done", "steps": len(rep.transcript), "mode": mode, "trace": attempt["model"]}
        event = {"follow": {"id": stored.id, "version": stored.version, "ok": True,
                            "saved_usd": max(0.0, stored.trace.cost_usd - spent)}}
        return AgentOutcome("done", result, attempts, {"transcript": rep.transcript}, None, event), None, attempts
    if rep.status == "ask":
        result = {"status": "awaiting_approval", "reason": rep.reason, "answer": None, "cost_usd": spent,
                  "mode": mode, "pending": {"tool": rep.pending[0], "args": rep.pending[1],
                                            "rule": rep.pending[2].rule, "reason": rep.pending[2].reason}}
        loop = {"transcript": rep.transcript, "steps": len(rep.transcript), "cost_usd": spent, **start}
        return AgentOutcome("awaiting_approval", result, attempts, loop, rep.pending), None, attempts
    if rep.status == "not_applicable":
        return None, None, attempts
    if rep.status == CANCELLED:
        result = {"answer": None, "status": CANCELLED, "reason": rep.reason, "cost_usd": spent,
                  "steps": len(rep.transcript), "mode": mode, "trace": attempt["model"]}
        return AgentOutcome(CANCELLED, result, attempts, {"transcript": rep.transcript}, None), None, attempts
    failed = {"follow": {"id": stored.id, "version": stored.version, "ok": False}}
    if rep.status == "done":        # supervised, every step passed, the verdict not "yes"
        rep.transcript[-1]["check"] = f"verification: {verdict.reason}"
        failed = failed if verdict.status == "rejected" else None
    start.update(transcript=rep.transcript, steps=len(rep.transcript), denials=int(rep.status == "denied"))
    if rep.status == "denied" and cfg.max_denials <= 1:
        result = {"answer": None, "confidence": None, "tier": TRACE_TIER, "model": attempt["model"],
                  "cost_usd": spent, "escalations": 0, "reason": rep.reason, "status": "failed",
                  "steps": len(rep.transcript), "mode": mode, "trace": attempt["model"]}
        return AgentOutcome("failed", result, attempts, {"transcript": rep.transcript}, None, failed), None, attempts
    return None, failed, attempts


def fill_missing(objective: dict, match: Match, router: Router, traces: TraceStore,
                 config: Config) -> tuple[Match | None, list[dict]]:
    """Find the values of ``match.missing`` (quoted parameters the goal shows
    without quotes) with the :data:`FILL_ACTION` action (the small model
    copies the span of the goal; see ``llm_config.yaml``), quote each span
    (:func:`~swarmd.agent.traces.quote_span`: it must be in the goal
    verbatim and safe) and match the quoted goal again at the full
    thresholds.  Returns the new :class:`Match` of the same trace (or
    ``None``) and the router's attempts (dicts marked ``action`` and ``mode``
    ``follower``, for the ledger; the caller marks them ``supervised`` when
    the replay is).  Routed with the objective's strategy; one the action
    cannot serve gives no value."""
    goal, attempts = objective["input"], []
    if FILL_ACTION not in config.actions:
        return None, attempts
    for param in match.missing:
        try:
            routed = route_for(router, FILL_ACTION, f"Example goal: {match.stored.trace.goal} Example value: "
                               f"{param.example} Goal: {goal}", objective)
        except RequestError as exc:
            logger.info("objective {}: no value for {} of trace {}: {}", objective["id"], param.name,
                        match.stored.id, exc)
            return None, attempts
        attempts += [{**a, "action": FILL_ACTION, "mode": FOLLOWER} for a in routed.attempts_json()]
        lines = (routed.answer or "").strip().splitlines()
        quoted = quote_span(goal, lines[0].strip().strip("'\"`")) if routed.status == "accepted" and lines else None
        if quoted is None:
            logger.info("objective {}: no value for {} of trace {} ({}: {!r})", objective["id"], param.name,
                        match.stored.id, routed.status, routed.answer)
            return None, attempts
        goal = quoted
    again = _match(traces, goal, config)
    if again is None or again.missing or again.stored.id != match.stored.id:
        return None, attempts
    return again, attempts


def _learned(out: AgentOutcome, objective: dict, config: Config) -> AgentOutcome:
    """``out`` with ``result["mode"] = "learner"`` and, when it ended ``done``
    from a tier able to plan, the learned trace in ``out.trace["learn"]``."""
    out.result["mode"] = LEARNER
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
