"""The agent loop of ``agent`` objectives: model proposes, governor decides, tool runs.

Each step asks the router (action :data:`AGENT_ACTION`, JSON output, the
objective's ``strategy`` and ``max_cost_usd``) for the next step:
``{"done": answer}`` ends it ``done``; ``{"tool", "args"}`` goes to the
governor: ``allow`` runs it in the workspace, ``deny`` tells the model (after
``governor.max_denials`` the objective ends ``failed``), ``ask`` stops the loop
for a human (:attr:`AgentOutcome.loop` holds the state; :func:`run_agent` with
``resume`` continues).  No usable JSON from any tier, or ``governor.max_steps``
replies: ``unresolved``.  ``should_stop`` (the job's "was the objective
cancelled?") is asked before each step and each tool action: ``cancelled``,
nothing more run.  No Redis or SQLite I/O here (the job does it).
Step by step, and the loop state's fields: docs/design.md (swarmd.agent.loop).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from loguru import logger

from swarmd.config import AGENT_ACTION, GovernorConfig
from swarmd.governor import Decision, Governor, envelope, redact
from swarmd.governor.execute import ToolResult, run_approved, run_tool
from swarmd.governor.governor import TOOL_ARGS
from swarmd.governor.workspace import approved_action
from swarmd.router import STOPPED, RequestError, RouteResult, Router
from swarmd.router.prompts import MAX_INPUT_CHARS
from swarmd.agent.approvals import resolution_decision

#: Characters of a reply that was not a valid step, kept in the transcript.
_REPLY_CHARS = 200
#: The state of an agent run stopped because its objective was cancelled (a final state).
CANCELLED = "cancelled"
#: "Stop now?": asked between steps (no arguments; cheap: one Redis GET in the worker).
ShouldStop = Callable[[], bool]


@dataclass
class AgentOutcome:
    """How one run of the loop ended.

    ``state``: ``done`` | ``failed`` | ``unresolved`` | ``awaiting_approval``
    | ``cancelled`` (``should_stop`` said stop);
    ``result``: ``answer`` (the final answer or ``None``), ``confidence``,
    ``tier``, ``model`` (of the last model call), ``cost_usd`` and
    ``escalations`` (totals over every run), ``reason``, ``steps``, and for a
    park ``pending`` (``{"tool", "args", "rule", "reason"}``); ``attempts``:
    this run's model calls (dicts, for the ledger); ``loop``: the state to
    store for a resume; ``pending``: ``(tool, args, decision)`` when parked.
    """

    state: str
    result: dict
    attempts: list[dict] = field(default_factory=list)
    loop: dict = field(default_factory=dict)
    pending: tuple[str, dict, Decision] | None = None
    #: what happened to execution traces (:meth:`swarmd.agent.traces.TraceStore.apply`), or ``None``
    trace: dict | None = None


def workspace_dir(data_dir: Path, objective_id: str) -> Path:
    """``<data_dir>/workspaces/<objective_id>``, created (mode 0700) if missing."""
    path = Path(data_dir) / "workspaces" / objective_id
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def parse_step(answer: str | None) -> tuple[dict | None, str | None]:
    """Read a model reply as a step: ``({"done": str}, None)``,
    ``({"tool": str, "args": dict}, None)``, or ``(None, why)`` for anything else.

    Argument *contents* are not checked here (the governor judges them);
    only the shape is.
    """
    try:
        step = json.loads(answer or "")
    except ValueError as exc:
        return None, f"not JSON ({exc})"
    if not isinstance(step, dict):
        return None, f"expected a JSON object, got {type(step).__name__}"
    if "done" in step:
        done = step["done"]
        return {"done": done if isinstance(done, str) else json.dumps(done)}, None
    tool, args = step.get("tool"), step.get("args")
    if not isinstance(tool, str) or not isinstance(args, dict):
        return None, 'expected {"tool": NAME, "args": {...}} or {"done": ANSWER}'
    if tool not in TOOL_ARGS:
        return None, f"unknown tool {tool[:40]!r}; tools: {', '.join(TOOL_ARGS)}"
    return {"tool": tool, "args": args}, None


def render_input(objective_text: str, transcript: list[dict], output_chars: int,
                 limit: int = MAX_INPUT_CHARS) -> str:
    """The router input for the next step: the objective, then as many of the
    most recent steps as fit in ``limit`` characters (older ones are dropped
    and counted)."""
    head = f"Objective: {' '.join(objective_text.split())}"[: limit // 2]
    lines = [_render_step(s, output_chars) for s in transcript]
    kept: list[str] = []
    room = limit - len(head) - 40
    for line in reversed(lines):
        if len(line) + 1 > room:
            break
        kept.append(line)
        room -= len(line) + 1
    kept.reverse()
    dropped = len(lines) - len(kept)
    steps = " ".join(kept) if kept else "none"
    more = f"({dropped} earlier step(s) not shown) " if dropped else ""
    return f"{head}\nSteps so far: {more}{steps}"


def _render_step(s: dict, output_chars: int) -> str:
    if "invalid" in s:
        return f"{s['n']}. invalid reply {s.get('reply', '')!r} -> {s['invalid']}"
    if "note" in s:
        return f"{s['n']}. {s['note']}"
    call = f"{s['n']}. {s['tool']} {json.dumps(s['args'], ensure_ascii=False)[:300]}"
    if not s.get("ran"):
        who = "a human" if str(s.get("rule", "")).startswith("approval.") else "the governor"
        return f"{call} -> DENIED by {who} ({s['rule']}: {s['reason'][:200]}); it did not run"
    status = f"exit {s['exit_code']}" if s.get("exit_code") is not None else "ran"
    error = f", error: {s['error']}" if s.get("error") else ""
    output = (s.get("output") or "")[:output_chars]
    check = f", check failed: {s['check']}" if s.get("check") else ""
    return f"{call} -> {s['decision']}, {status}{error}{check}, output: {output or '(none)'}"


def record_run(transcript: list[dict], n: int, tool: str, args: dict, res: ToolResult, output_chars: int) -> dict:
    """Append step ``n`` (a tool call and its :class:`ToolResult`) to
    ``transcript`` in the loop's shape (output cut at ``output_chars``); returns it."""
    out = res.output[:output_chars] + (" [truncated]" if res.truncated or len(res.output) > output_chars else "")
    step = {"n": n, "tool": tool, "args": args, "decision": res.decision.decision, "rule": res.decision.rule,
            "reason": res.decision.reason, "ran": res.ran, "exit_code": res.exit_code, "output": out,
            "error": res.error}
    transcript.append(step)
    return step


def route_for(router: Router, action: str, text: str, objective: dict,
              should_stop: ShouldStop | None = None) -> RouteResult:
    """``router.route(action, text)`` for one model call of ``objective`` (an
    objective dict: ``id``, ``max_cost_usd``, ``strategy``): ledgered under
    its id, within its cost cap (USD), under its routing strategy (``None``:
    the action's); ``should_stop`` is asked before each escalation
    (:meth:`Router.route`).  Raises :class:`RequestError` as :meth:`Router.route`
    does (e.g. a strategy the action's chain cannot serve)."""
    oid = objective["id"]
    return router.route(action, text, objective_id=oid, request_id=oid, max_cost_usd=objective.get("max_cost_usd"),
                        strategy=objective.get("strategy"), should_stop=should_stop)


def why_unanswered(routed: RouteResult) -> str:
    """Why ``routed`` (not accepted) gave no answer: its ``reason``, then the
    models it skipped with their reasons in parentheses (none skipped: nothing)."""
    skipped = f" ({'; '.join(routed.skipped)})" if routed.skipped else ""
    return f"{routed.reason}{skipped}"


def run_agent(objective: dict, router: Router, governor: Governor, cfg: GovernorConfig, workspace: Path,
              resume: dict | None = None, start: dict | None = None,
              should_stop: ShouldStop | None = None) -> AgentOutcome:
    """Run the loop for ``objective`` (an objective dict) until done, failed,
    unresolved or parked (see the module docstring).

    ``governor`` should carry an audit sink (decisions are recorded under
    the objective id); ``workspace``: the objective's directory (tools run
    there).  ``resume``: a park record with a ``resolution`` (see
    :mod:`swarmd.agent.approvals`) to continue a parked run.  ``start``
    (without ``resume``): the loop state to begin from, e.g. ``{"plan":
    [steps], "transcript": [steps a replay ran], "steps": n}``; ``plan``
    (the planner's steps) is shown to the model after the objective, and
    ``learn`` (anything JSON) is kept in the loop state for the caller.
    ``should_stop``: asked before each step (model call) and each tool
    action; ``True`` ends the run :data:`CANCELLED` there (what ran is in the
    transcript; nothing after it runs).  Never raises for model or tool failures.
    """
    oid = objective["id"]
    loop = dict(resume["loop"]) if resume else dict(start or {})
    transcript: list[dict] = list(loop.get("transcript", []))
    state = {"steps": int(loop.get("steps", 0)), "denials": int(loop.get("denials", 0)),
             "cost_usd": float(loop.get("cost_usd", 0.0)), "escalations": int(loop.get("escalations", 0)),
             "plan": loop.get("plan"), "learn": loop.get("learn")}
    goal = objective["input"] + ("\nPlan: " + " ".join(f"{i}. {p}" for i, p in enumerate(state["plan"], 1))
                                 if state["plan"] else "")
    attempts: list[dict] = []
    last: dict[str, Any] = {k: loop.get(k) for k in ("confidence", "tier", "model")}
    ws = str(workspace)

    def outcome(status: str, reason: str | None, answer: str | None = None,
                pending: tuple[str, dict, Decision] | None = None) -> AgentOutcome:
        result = {"answer": answer, "confidence": last["confidence"], "tier": last["tier"],
                  "model": last["model"], "cost_usd": state["cost_usd"], "escalations": state["escalations"],
                  "reason": reason, "status": status, "steps": state["steps"]}
        if pending:
            result["pending"] = {"tool": pending[0], "args": pending[1], "rule": pending[2].rule,
                                 "reason": pending[2].reason}
        if status != "awaiting_approval":
            envelope.release(str(objective["id"]))  # the objective's cgroups go with it (governor/envelope.py)
        # results and traces leave the worker redacted (the pending action itself is kept exact: it may run)
        return AgentOutcome(status, redact(result), attempts, redact({"transcript": transcript, **state, **last}),
                            pending)

    def denied(step: dict) -> AgentOutcome | None:
        state["denials"] += 1
        logger.info("objective {} step {}: {} denied ({}), denial {}/{}", oid, step["n"], step["tool"],
                    step["rule"], state["denials"], cfg.max_denials)
        if state["denials"] >= cfg.max_denials:
            return outcome("failed", f"denied: {step['rule']} {step['reason']}")
        return None

    def stopped(before: str) -> AgentOutcome | None:
        if should_stop is None or not should_stop():
            return None
        logger.info("objective {} cancelled while running: stopped before {}", oid, before)
        return outcome(CANCELLED, f"cancelled while running: stopped before {before}")

    if resume:
        decision = resolution_decision(resume)
        tool, args, n = resume["tool"], resume["args"], state["steps"]
        end = stopped(f"step {n} ({tool})")
        if end:
            return end
        if decision.decision == "allow":
            with approved_action(ws, decision.rule):  # what it changes is not asked again in the change set
                res = run_approved(governor, tool, args, ws, decision, objective_id=oid)
        else:
            res = ToolResult(decision, ran=False)
        step = record_run(transcript, n, tool, args, res, cfg.output_chars)
        if not res.ran:
            end = denied(step)
            if end:
                return end

    while state["steps"] < cfg.max_steps:
        state["steps"] += 1
        n = state["steps"]
        end = stopped(f"step {n}")
        if end:
            state["steps"] -= 1     # not taken
            return end
        try:
            routed = route_for(router, AGENT_ACTION, render_input(goal, transcript, cfg.output_chars), objective,
                               should_stop)
        except RequestError as exc:         # a strategy the agent action's chain cannot serve
            return outcome("unresolved", f"no usable next step: {exc}")
        attempts.extend(routed.attempts_json())
        state["cost_usd"] += routed.cost_usd
        state["escalations"] += routed.escalations
        last.update(confidence=routed.confidence, tier=routed.tier, model=routed.model)
        if routed.status != "accepted" and routed.reason == STOPPED:
            return outcome(CANCELLED, f"cancelled while running: stopped in step {n} before an escalation")
        if routed.status != "accepted":
            return outcome("unresolved", f"no usable next step from any tier: {routed.reason}")
        step, why = parse_step(routed.answer)
        if step is None:
            logger.info("objective {} step {}: invalid step: {}", oid, n, why)
            transcript.append({"n": n, "invalid": why, "reply": (routed.answer or "")[:_REPLY_CHARS]})
            continue
        if "done" in step:
            return outcome("done", None, answer=step["done"])
        tool, args = step["tool"], step["args"]
        end = stopped(f"step {n}'s action ({tool})")
        if end:
            return end
        res = run_tool(governor, tool, args, ws, objective_id=oid)
        if res.decision.decision == "ask":
            return outcome("awaiting_approval", f"ask: {res.decision.rule} {res.decision.reason}",
                           pending=(tool, args, res.decision))
        recorded = record_run(transcript, n, tool, args, res, cfg.output_chars)
        if not res.ran:
            end = denied(recorded)
            if end:
                return end
    return outcome("unresolved", f"no final answer after governor.max_steps={cfg.max_steps} steps")
