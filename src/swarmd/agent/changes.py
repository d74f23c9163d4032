"""An agent objective's copy of its workspace and the change sets it brings back.

The agent loop runs in the objective's copy (:func:`agent_copy`: ``<data dir>/agent-copies/<id>``,
made once from ``<data dir>/workspaces/<id>`` by :func:`swarmd.governor.workspace.make_copy`).
At each approval point (the loop parks on an ``ask``, or ends) :func:`approval_point` applies
the change set's allowed entries to the real workspace; refused ones never are. When the loop
ended but changes wait for a person (deleting tracked files, protected paths), the objective
parks once more with the pseudo-tool :data:`CHANGESET_TOOL`, the change list and its diff as
arguments (``swarmctl approvals`` and ``show`` print them); the loop's end is kept in the park
record and :func:`resume_changes` finishes it after the decision: approve applies those changes
(judged again: a deny still wins), reject or timeout leaves them out. Commits are made by
swarmd from the applied change set when ``governor.commit_changes`` is set
(:func:`swarmd.governor.workspace.commit`), never by the agent's git.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from loguru import logger

from swarmd.governor import Decision, Policy
from swarmd.governor.policy import strictest
from swarmd.governor.workspace import (AgentCopy, WorkspaceError, apply, change_set, commit, diff_text, discard,
                                       dismiss, make_copy, sync)
from swarmd.agent.loop import AgentOutcome, workspace_dir
from swarmd.agent.approvals import resolution_decision

#: the ``tool`` of a park record holding a change set (not a tool the model can name)
CHANGESET_TOOL = "apply_changes"
#: change entries listed in a park record's arguments (the diff is cut at DIFF_CHARS anyway)
MAX_LISTED = 200


def agent_copy(data_dir: Path, objective_id: str, policy: Policy) -> AgentCopy:
    """The objective's copy (made from ``<data_dir>/workspaces/<id>`` on first use).
    Raises :class:`swarmd.governor.workspace.WorkspaceError` when it cannot be made."""
    real = workspace_dir(data_dir, objective_id)
    ac = AgentCopy(_copy_dir(data_dir, objective_id), os.path.realpath(real))
    if not ac.exists():
        if os.path.isdir(ac.dir) and os.listdir(ac.dir):
            logger.warning("objective {}: its copy in {} is incomplete or gone (a tmpfs lost to a reboot?); "
                           "making a new one: changes not applied yet are lost", objective_id, ac.dir)
            discard(ac)
        return make_copy(ac.real, ac.dir, policy)
    return ac


def discard_copy(data_dir: Path, objective_id: str) -> bool:
    """Remove the objective's copy in ``<data_dir>/agent-copies/<id>`` (its tmpfs unmounted), if
    this host has one; True when there was one. For an objective cancelled while parked: no
    worker resumes it, so nothing else would ever remove the copy. Never raises."""
    d = _copy_dir(data_dir, objective_id)
    if not os.path.isdir(d):
        return False
    discard(AgentCopy(d, ""))      # the real workspace plays no part in removing a copy
    return True


def _copy_dir(data_dir: Path, objective_id: str) -> str:
    """``<data_dir>/agent-copies/<id>``, resolved: where the objective's copy lives."""
    return os.path.realpath(Path(data_dir) / "agent-copies" / objective_id)


def _summary(res: dict) -> dict:
    return {"applied": len(res["applied"]), "commit": res.get("commit"), "refused": [(c["path"], c["rule"]) for c in res["refused"]][:MAX_LISTED],
            "pending": [(c["op"], c["path"], c["rule"]) for c in res["pending"]][:MAX_LISTED],
            "errors": res["errors"][:MAX_LISTED], "diff": res.get("diff", "")}


def _commit(ac: AgentCopy, res: dict, objective_id: str | None) -> None:
    if res["applied"]:
        res["commit"] = commit(ac, sorted({c["path"] for c in res["applied"]}),
                               f"swarmd: changes of objective {objective_id} ({len(res['applied'])} path(s))")


def approval_point(ac: AgentCopy, policy: Policy, outcome: AgentOutcome, *, commit_as: str | None = None) -> AgentOutcome:
    """Apply what the policy allows of the copy's change set; record it in
    ``outcome.result["changes"]`` (``applied`` count, ``refused``/``pending``
    ``(path, rule)`` lists, ``diff`` of the pending ones). A loop that ended
    while changes wait for a person becomes a park on :data:`CHANGESET_TOOL`
    (its end is kept in ``loop["final"]``). ``commit_as``: an objective id to
    commit the applied changes under (``governor.commit_changes``). Returns the
    outcome to report; when the change set cannot be computed or applied (base
    manifest unreadable, git failing) the objective fails with that reason."""
    try:
        res = sync(ac, policy)
        if commit_as is not None:
            _commit(ac, res, commit_as)
    except (WorkspaceError, OSError, subprocess.SubprocessError) as exc:   # fail closed: the objective fails
        logger.error("objective change set in {} not applied: {}", ac.dir, exc)
        result = dict(outcome.result, status="failed", reason=f"workspace change set not applied: {exc}")
        result.pop("pending", None)
        return AgentOutcome("failed", result, outcome.attempts, outcome.loop, None, outcome.trace)
    changes = _summary(res)
    outcome.result["changes"] = changes
    if not res["pending"] or outcome.pending is not None:
        if res["pending"]:
            outcome.loop["changes"] = changes      # kept in the park record: swarmctl show prints them
        return outcome
    decision = strictest([Decision(c["decision"], c["rule"], c["reason"]) for c in res["pending"]], None)
    args = {"changes": [{"op": c["op"], "path": c["path"], "rule": c["rule"]} for c in res["pending"]][:MAX_LISTED],
            "diff": res["diff"]}
    if any(c["rule"] == "workspace.changeset-too-large" for c in res["pending"]):
        args["whole_set"] = len(res["pending"])     # decided as one: more entries than are listed
    loop = dict(outcome.loop, final={"state": outcome.state, "result": outcome.result}, changes=changes)
    result = dict(outcome.result, status="awaiting_approval",
                  reason=f"ask: {decision.rule} {len(res['pending'])} change(s) wait for approval",
                  pending={"tool": CHANGESET_TOOL, "args": args, "rule": decision.rule, "reason": decision.reason})
    return AgentOutcome("awaiting_approval", result, outcome.attempts, loop, (CHANGESET_TOOL, args, decision),
                        outcome.trace)


def resume_changes(ac: AgentCopy, policy: Policy, record: dict, *, commit_as: str | None = None) -> AgentOutcome:
    """Finish an objective parked on :data:`CHANGESET_TOOL` after the person's
    decision (``record``: the park record with its resolution): approve applies
    the listed changes still in the change set (a ``deny`` now is not applied),
    reject/timeout marks them as seen so they are not asked again (an oversized set,
    ``args["whole_set"]``: every entry asked now, not only the listed ones). Returns the
    loop's final outcome with ``changes`` updated."""
    decision = resolution_decision(record)
    paths = {c["path"] for c in record["args"].get("changes", [])}
    cs = change_set(ac, policy)
    if record["args"].get("whole_set"):    # an oversized set, decided as one: every entry still asked
        paths |= {c.path for c in cs.changes if c.decision.decision == "ask"}
    if decision.decision == "allow":
        res = apply(ac, cs, only=paths, approved=True)
    else:
        dismiss(ac, sorted(paths))
        res = {"applied": [], "refused": [], "errors": [],
               "pending": [c.to_json() for c in cs.changes if c.path in paths]}
    if commit_as is not None:
        _commit(ac, res, commit_as)
    res["diff"] = diff_text(ac, res["pending"]) if res["pending"] and decision.decision == "allow" else ""
    final = record["loop"].get("final") or {"state": "done", "result": {}}
    result = dict(final["result"], changes=_summary(res), approval=decision.rule)
    loop = {k: v for k, v in record["loop"].items() if k not in ("final", "changes")}
    return AgentOutcome(final["state"], result, [], loop, None)
