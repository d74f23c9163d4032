"""``swarmctl ask | submit | status | show | logs``: route inputs, push objectives, watch the daemon.

``ask`` runs the router in this process (no daemon needed), against the
daemon's shared budget when its Redis is known (:func:`ask_budget`); the
others talk to the daemon through its Redis (:func:`swarmd.cli.common.connect`)
or read its store and log in the data directory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import deque

from redis import Redis
from redis.exceptions import RedisError
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from swarmd import constants as K
from swarmd.cli.common import add_redis_url, connect, default_db, err, labels, out, print_fields, table
from swarmd.config import STRATEGIES, ConfigError, load_config
from swarmd.daemon.control import push
from swarmd.costs import Budget, Ledger
from swarmd.costs.budgets import NoBudgetStore
from swarmd.errors import EXIT_OK, EXIT_UNREACHABLE, EXIT_UNRESOLVED, BadInput, Unreachable
from swarmd.governor.sandbox import probe
from swarmd.jsonl import JsonlError, read_jsonl
from swarmd.memory.records import Memory
from swarmd.memory.verification import UnverifiedGate, unverified_gates
from swarmd.objectives import FINAL_STATES, PRIORITIES, ObjectiveError, new_id, validate
from swarmd.paths import data_dir, db_path
from swarmd.router import RequestError, Router
from swarmd.agent import approvals
from swarmd.daemon.views import status_data
from swarmd.daemon.store import RESULT_FIELDS, Store
from swarmd.router.reach import plan_problem
from swarmd.router.router import verification_of

#: The warning of ``status`` (and ``/api/v1/status``, the dashboard) when no worker is registered.

#: Seconds between polls of ``submit --wait`` and ``logs -f``.
POLL_S = 0.3

ASK_EPILOG = """\
examples:
  swarmctl ask --action classify --labels feat,fix,docs --input 'fix crash on empty file'
  swarmctl ask --action yes_no --input 'Is 9 a prime number?' --json
  swarmctl ask --action classify --labels feat,fix --file items.jsonl > results.jsonl

items.jsonl has one {"id": ..., "text": ...} object per line (optional "labels": "a,b"), or
submit's objective lines {"action": ..., "input": ..., "id"?, "labels"?} (a line's action
overrides --action; a missing id is generated).
--json keys: id, answer, confidence, tier, model, status, escalations, cost_usd, latency_ms
(and reason when unresolved: "budget" when a cap refused a priced tier)
budgets: priced calls are reserved and settled in the daemon's shared budget (its Redis, found as
--redis-url says), so the daily and monthly caps of llm_config.yaml count and stop them as they do
the workers'.  With no Redis known or reachable: a config without caps calls priced tiers unchecked;
one with a cap refuses them (free tiers still answer) and says so on stderr.
exit codes: 0 accepted (with --file: every item), 1 unresolved (with --file: any item; all are
still printed), 2 bad input, 3 (with a cap) the daemon's Redis unreachable."""

SUBMIT_EPILOG = """\
examples:
  swarmctl submit --action classify --labels feat,fix,docs --input 'fix crash on empty file'
  swarmctl submit --file objectives.jsonl --wait
  swarmctl submit "bump the version in pyproject.toml to 1.4.2 and verify it"

objectives.jsonl: one object per line with action, input, and optionally id, labels,
priority (high|normal|low), max_cost_usd, strategy (cascade|local_only|api_only|local_fallback),
tags.  Free text (or a line without action)
is an agent objective: planned by actions.plan's tier, or replayed from an execution trace.
A strategy must be one the action's chain can serve (for an agent objective: the chains of
agent, plan, fill_slot and verify_trace, which all route with it), else nothing is submitted.
Nothing is submitted either when no model of an objective's plan can answer as the running daemon
sees it (no Ollama host answering, no ANTHROPIC_API_KEY): the error says what to configure.
summarize/extract/generate_code start at LOCAL_QUALITY (Ollama): the embedded model does not answer
them (its summaries looped or copied in 19 of 20: bench/generative.py).
exit codes: 0 submitted (with --wait: every objective done), 1 with --wait: one ended unresolved
or failed, awaits approval, or --timeout passed first, 2 bad input, 3 daemon unreachable."""

#: Help of ``ask --strategy`` and ``submit --strategy``.
STRATEGY_HELP = "routing strategy (default: the action's, cascade unless llm_config.yaml says otherwise)"


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``ask``, ``submit``, ``status``, ``show`` and ``logs`` to swarmctl's subcommands."""
    ask = sub.add_parser(
        "ask", help="route one input or a JSONL file through the tiered router",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=ASK_EPILOG,
        description="Send inputs to the cheapest tier that answers them well, escalating while the "
                    "quality gate's confidence is below the threshold. Every call is written to the "
                    "cost ledger in the data directory, and every priced call is held against the "
                    "daemon's shared daily/monthly budget (see 'budgets' below).")
    ask.add_argument("--action", help="an action from llm_config.yaml (classify, yes_no, summarize, ...); "
                                      "required with --input; with --file the default of lines without one")
    ask.add_argument("--labels", help="comma-separated label set for classify/tag, e.g. feat,fix,docs")
    src = ask.add_mutually_exclusive_group()
    src.add_argument("--input", help="the text to process")
    src.add_argument("--file", help="JSONL file of {id, text} items or of submit's objective lines {action, input} "
                                    "('-' for stdin); one JSON result per line on stdout")
    ask.add_argument("--strategy", choices=STRATEGIES, help=STRATEGY_HELP)
    ask.add_argument("--json", action="store_true", help="print the result as one JSON object")
    ask.add_argument("--no-ledger", action="store_true", help="do not write calls to the cost ledger")
    add_redis_url(ask)
    ask.set_defaults(func=cmd_ask)

    submit = sub.add_parser(
        "submit", help="push objectives to the daemon",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=SUBMIT_EPILOG,
        description="Validate objectives and push them onto the daemon's objective stream. Nothing is "
                    "submitted if any objective is invalid; each problem is reported with its reason.")
    submit.add_argument("text", nargs="?",
                        help="free-text objective: an agent objective (planned, or replayed from an execution trace)")
    submit.add_argument("--action", help="action from llm_config.yaml")
    submit.add_argument("--input", help="the objective's input text")
    submit.add_argument("--labels", help="comma-separated labels for classify/tag")
    submit.add_argument("--priority", choices=PRIORITIES)
    submit.add_argument("--max-cost-usd", type=float, dest="max_cost_usd", help="cost cap for this objective (USD)")
    submit.add_argument("--strategy", choices=STRATEGIES, help=STRATEGY_HELP)
    submit.add_argument("--id", help="objective id (default: generated)")
    submit.add_argument("--tag", action="append", help="tag (repeatable)")
    submit.add_argument("--file", help="JSONL file of objectives ('-' for stdin), submitted in one pipeline")
    submit.add_argument("--wait", action="store_true",
                        help="show a progress bar until all are final, then each objective's id, state, answer "
                             "and tier (a table)")
    submit.add_argument("--timeout", type=float, help="with --wait: give up after this many seconds")
    submit.add_argument("--json", action="store_true",
                        help="with --wait: print each objective as one JSON line (id, state, answer, tier, "
                             "confidence, cost_usd, reason) instead of the table")
    add_redis_url(submit)
    submit.set_defaults(func=cmd_submit)

    status = sub.add_parser("status", help="daemon, queues, workers, objectives by state, today's spend",
                            description="Show whether the daemon is alive, queue depths, workers and what each "
                                        "is doing, objectives by state, and today's (UTC) spend and calls by tier. "
                                        "--json keys: daemon{alive,uptime_s,pid,host}, queues, workers, "
                                        "objectives{queued,running,awaiting_approval,done,failed,unresolved}, "
                                        "spend_today_usd, by_tier_today, warnings (e.g. no worker running), "
                                        "malformed{objectives,events} (stream "
                                        "entries skipped as no objective: not JSON, no usable id; one naming an "
                                        "id that the daemon's validation rejects counts in objectives.failed), "
                                        "sandbox{kind,available,reason}, warnings (sentences: no worker running, workers x "
                                        "n_threads above the cores, ...), tiers (one per model: key, tier, "
                                        "provider, model, up, reachable, problem, key_present, model_loaded, "
                                        "loaded_in, cooling_down{until,reason,workers}), budgets{daily_usd,monthly_usd} (the caps of "
                                        "the config, USD; null: none), "
                                        "unverified_gates (quality gates that accepted answers under the shipped "
                                        "calibration, with the reviews still needed; from the store in the data "
                                        "directory). "
                                        "Exit 3 when the daemon or its Redis is not reachable.")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    add_redis_url(status)
    status.set_defaults(func=cmd_status)

    show = sub.add_parser("show", help="one objective's result and attempts",
                          description="One objective: its result and every attempt (from the store in the data "
                                      "directory, else from the daemon's Redis, which holds the result but "
                                      "not the attempts). Exit 0 done or not final yet, 1 ended unresolved or "
                                      "failed, 2 no such objective, 3 Redis unreachable.")
    show.add_argument("id", help="objective id (printed by swarmctl submit)")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    add_redis_url(show)
    show.set_defaults(func=cmd_show)

    logs = sub.add_parser("logs", help="print the daemon log (daemon_hybrid.log)",
                          description="Print the last lines of the daemon log (daemon.log.path of the config, "
                                      "under the data directory), and with -f every line written after them.")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C stops)")
    logs.add_argument("-n", "--lines", type=int, default=50, help="lines to show first (default 50)")
    logs.set_defaults(func=cmd_logs)


# --------------------------------------------------------------------------- ask


def cmd_ask(args: argparse.Namespace) -> int:
    """Route one input (``--input``) or a JSONL file (``--file``) through the
    router, with the budget of :func:`ask_budget`."""
    config = load_config(args.config)
    default_labels = labels(args.labels)
    if args.file:
        items = read_jsonl(args.file, _ask_item(args.action))
    elif args.input is not None:
        if not args.input.strip():
            raise BadInput("--input is empty")
        if not args.action:
            raise BadInput("--action is required with --input")
        items = [{"id": None, "text": args.input, "action": args.action, "labels": None}]
    else:
        raise BadInput("give --input TEXT or --file items.jsonl")
    budget, client = ask_budget(args, config)
    ledger = None if args.no_ledger else Ledger(db_path(data_dir(args.data_dir), config.storage.db),
                                                write_behind=True)
    router = Router(config, ledger, budget=budget)
    try:   # every (action, labels) of a file checked before anything is routed
        for action, item_labels in dict.fromkeys((i["action"], _item_labels(i, default_labels)) for i in items):
            router.check_request(action, item_labels, args.strategy)
            problem = plan_problem(config, action, args.strategy)
            if problem is not None:
                raise RequestError(problem)
    except RequestError:  # a BadInput (exit 2)
        router.close()
        if client is not None:
            client.close()
        raise
    unresolved = 0
    try:
        if args.file:
            with Progress(console=err, transient=True) as progress:
                task = progress.add_task(args.action or "ask", total=len(items))
                for chunk in _label_chunks(items, default_labels, config.daemon.batch_max):
                    results = router.route_many(chunk[0]["action"], [item["text"] for item in chunk],
                                                _item_labels(chunk[0], default_labels),
                                                request_ids=[item["id"] for item in chunk], strategy=args.strategy)
                    for result in results:
                        unresolved += result.status != "accepted"
                        print(json.dumps(result.to_json()), flush=True)
                    progress.advance(task, len(chunk))
            err.print(f"{len(items)} items, {unresolved} unresolved")
        else:
            result = router.route(args.action, items[0]["text"], default_labels, strategy=args.strategy)
            unresolved = result.status != "accepted"
            if args.json:
                print(json.dumps(result.to_json()))
            else:
                print_fields([("answer", str(result.answer)), ("confidence", f"{result.confidence:.3f}"),
                              ("status", result.status + (f" ({result.reason})" if result.reason else "")),
                              ("tier", result.tier), ("model", result.model), ("escalations", result.escalations),
                              ("cost", f"${result.cost_usd:.6f}"), ("latency", f"{result.latency_ms:.0f} ms"),
                              ("verification", result.verification)])
                for skipped in result.skipped:
                    err.print(f"[yellow]skipped[/] {skipped}")
    finally:
        router.close()
        if ledger is not None:
            ledger.close()                      # writes the rows still queued
        if client is not None:
            client.close()
    return EXIT_UNRESOLVED if unresolved else EXIT_OK


def ask_budget(args: argparse.Namespace, config) -> tuple[Budget | NoBudgetStore | None, Redis | None]:
    """The budget ``ask`` routes with, and its Redis client (to close), from
    ``args`` (``--redis-url``, ``--data-dir``, ``--config``) and the loaded ``config``:

    * the daemon's Redis is known and answers (:func:`swarmd.cli.common.connect`:
      the same resolution as every swarmctl command): the workers' shared
      :class:`~swarmd.costs.Budget`, so ``budgets.daily_usd`` /
      ``budgets.monthly_usd`` refuse ``ask``'s priced calls as they refuse the
      workers', and its spend is added to theirs;
    * else, with either cap set: a :class:`~swarmd.costs.budgets.NoBudgetStore`,
      which refuses every priced call (a cap that cannot be checked is not
      enforced by pretending: a local tally would let each run spend the whole
      cap again), and a notice on stderr saying why and how to give the Redis;
    * else (no caps): ``None``, priced calls unchecked, as nothing caps them.
    """
    try:
        client = connect(args)
    except Unreachable as exc:
        caps = config.budgets
        if caps.daily_usd is None and caps.monthly_usd is None:
            return None, None
        err.print("[yellow]priced tiers refused:[/] budgets.daily_usd/monthly_usd are set in the config but the "
                  f"shared budget cannot be checked: {escape(str(exc))}")
        return NoBudgetStore(str(exc)), None
    return Budget(client, config), client


def _ask_item(action: str | None):
    """The ``parse`` of ``ask --file`` lines (:func:`swarmd.jsonl.read_jsonl`):
    an ask item ``{"id", "text", "labels"?}`` or one of ``submit``'s objective
    lines ``{"action"?, "input", "id"?, "labels"?, ...}`` (``text`` is
    ``input``'s alias, as in submit; a line's ``action`` overrides
    ``--action``, the default; a missing id is generated).  Returns
    ``{"id", "text", "labels", "action"}``; raises ``ValueError`` naming
    what is wrong (read_jsonl adds ``file:line``)."""
    def parse(obj: dict) -> dict:
        text = obj.get("input") if obj.get("input") is not None else obj.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ValueError("missing or empty string field(s): text (or input, as in submit's lines)")
        item_action = obj.get("action") or action
        if not isinstance(item_action, str):
            raise ValueError("no action: give --action or an \"action\" field")
        item_labels = obj.get("labels")
        if item_labels is not None and not isinstance(item_labels, str) and not (
                isinstance(item_labels, list) and all(isinstance(x, str) for x in item_labels)):
            raise ValueError(f"labels: expected a comma-separated string or a list of strings, found "
                             f"{type(item_labels).__name__}")
        oid = obj.get("id")
        if oid is not None and (not isinstance(oid, str) or not oid.strip()):
            raise ValueError("id: expected a non-empty string")
        return {"id": oid or new_id(), "text": text, "labels": item_labels, "action": item_action}
    return parse


def _item_labels(item: dict, default: tuple[str, ...]) -> tuple[str, ...]:
    found = item.get("labels")
    if isinstance(found, list):
        return tuple(x.strip() for x in found)
    return labels(found) if isinstance(found, str) else default


def _label_chunks(items: list[dict], default: tuple[str, ...], size: int):
    """Runs of consecutive ``items`` with the same action and label set, at
    most ``size`` long (``daemon.batch_max``): each is routed as one batch, in
    file order."""
    chunk: list[dict] = []
    for item in items:
        if chunk and (len(chunk) >= size or item["action"] != chunk[0]["action"]
                      or _item_labels(item, default) != _item_labels(chunk[0], default)):
            yield chunk
            chunk = []
        chunk.append(item)
    if chunk:
        yield chunk


# --------------------------------------------------------------------------- submit


def cmd_submit(args: argparse.Namespace) -> int:
    """Validate objectives and push them onto the objective stream (one pipeline)."""
    config = load_config(args.config)
    if args.file:
        try:
            objectives = read_jsonl(args.file, lambda raw: validate(raw, config))
        except JsonlError as exc:
            raise BadInput(f"nothing submitted:\n{exc}") from None
    elif args.text is not None or args.input is not None:
        raw = {"input": args.input if args.input is not None else args.text}
        if args.action:
            raw["action"] = args.action
        for key in ("labels", "priority", "max_cost_usd", "strategy", "id"):
            if getattr(args, key) is not None:
                raw[key] = getattr(args, key)
        if args.tag:
            raw["tags"] = args.tag
        try:
            objectives = [validate(raw, config)]
        except ObjectiveError as exc:
            raise BadInput(f"nothing submitted:\n{exc}") from None   # exc names the objective already
    else:
        raise BadInput("give the objective text, --input TEXT with --action, or --file objectives.jsonl")
    ids = [o.id for o in objectives]
    if len(set(ids)) != len(ids):
        raise BadInput("nothing submitted: duplicate ids in this batch")
    client = connect(args)
    push(client, objectives, config)      # the reach check and the submit spans, as the API's submit
    if not args.wait:
        for oid in ids:
            print(oid)
        return EXIT_OK
    err.print(f"submitted {len(ids)} objective(s)")
    code = _wait(client, ids, args.timeout, args.json)
    print_results(client, ids, args.json)
    return code


#: Rows of ``submit --wait``'s table at most; the rest are counted (every one is in ``--json``).
RESULT_TABLE_ROWS = 25


def print_results(client, ids: list[str], as_json: bool) -> None:
    """Each objective's id, state, answer and tier (from its Redis hash:
    :func:`mirrored_record`) as a table of at most :data:`RESULT_TABLE_ROWS` rows
    (then a line counting the others), or as JSON lines (``{"id", "state",
    "answer", "tier", "confidence", "cost_usd", "reason"}``, every one) with ``as_json``."""
    grid = table("id", "state", "answer", "tier")
    shown = ids if as_json else ids[:RESULT_TABLE_ROWS]
    for oid in shown:
        try:
            record = mirrored_record(client, oid)
        except BadInput:      # expired from Redis already (result_ttl_s)
            record = {"id": oid, "state": "unknown"}
        row = {k: record.get(k) for k in ("id", "state", "answer", "tier", "confidence", "cost_usd", "reason")}
        if as_json:
            print(json.dumps(row))
        else:
            grid.add_row(oid, str(row["state"]), "" if row["answer"] is None else str(row["answer"]),
                         str(row["tier"] or ""))
    if not as_json:
        out.print(grid)
        if len(ids) > len(shown):
            out.print(f"... and {len(ids) - len(shown)} more (`swarmctl list`, `swarmctl show ID`, or --json for all)")


#: What ``unverified`` means, where an answer is marked so (``show``, ``submit --wait``).
UNVERIFIED = ("accepted by a quality gate that has not shown its risk bound on this deployment (the shipped "
              "calibration, fitted on another repository); `swarmctl memory stats` says how many reviews "
              "(`swarmctl feedback`) let consolidation check it")


def _unverified(client, ids: list[str]) -> list[str]:
    """The ids among ``ids`` whose Redis result says ``verification: unverified``."""
    pipe = client.pipeline(transaction=False)
    for oid in ids:
        pipe.hget(K.objective_key(oid), "result")
    return [oid for oid, raw in zip(ids, pipe.execute())
            if raw and json.loads(raw).get("verification") == "unverified"]


def _wait(client, ids: list[str], timeout: float | None, as_json: bool = False) -> int:
    """Progress bar until every objective is final or parked awaiting approval
    (which needs a person: `swarmctl approvals`), or ``timeout`` seconds; then a
    summary.  Returns 0 when every objective is ``done``, else 1 (one ended
    unresolved or failed, awaits approval, or the timeout passed first)."""
    settled = (*FINAL_STATES, "awaiting_approval")
    states: dict[str, str] = {}
    deadline = time.monotonic() + timeout if timeout else None
    with Progress(TextColumn("objectives"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err) as progress:
        task = progress.add_task("wait", total=len(ids))
        while True:
            pending = [i for i in ids if states.get(i) not in settled]
            if not pending or (deadline and time.monotonic() > deadline):
                break
            pipe = client.pipeline(transaction=False)
            for oid in pending:
                pipe.hget(K.objective_key(oid), "state")
            try:
                replies = pipe.execute()
            except RedisError as exc:   # submitted already: say so, and how to follow them
                raise Unreachable(f"lost the connection to Redis while waiting ({type(exc).__name__}: {exc}); "
                                  f"the {len(ids)} objective(s) were submitted: follow them with "
                                  "`swarmctl status` / `swarmctl show ID` once Redis is back") from None
            for oid, state in zip(pending, replies):
                states[oid] = state.decode() if state else "unknown"
            progress.update(task, completed=sum(states.get(i) in settled for i in ids))
            time.sleep(POLL_S)
    summary: dict[str, int] = {}
    for oid in ids:
        summary[states.get(oid, "unknown")] = summary.get(states.get(oid, "unknown"), 0) + 1
    say = err if as_json else out      # with --json, stdout holds JSON lines only
    say.print("  ".join(f"{k}: {v}" for k, v in sorted(summary.items())))
    answered = [i for i in ids if states.get(i) == "done"]
    unverified = _unverified(client, answered)
    if unverified:
        say.print(f"[yellow]unverified: {len(unverified)} of {len(answered)} done[/] ({UNVERIFIED}): "
                  + ", ".join(unverified[:10]) + (" ..." if len(unverified) > 10 else ""))
    done = all(states.get(i) in settled for i in ids)
    if not done:
        err.print("[yellow]timed out before every objective finished[/]")
    elif any(states.get(i) == "awaiting_approval" for i in ids):
        err.print("some objectives await approval: see `swarmctl approvals`")
    return EXIT_OK if all(states.get(i) == "done" for i in ids) else EXIT_UNRESOLVED


# --------------------------------------------------------------------------- status, show


def _unverified_gates(args: argparse.Namespace) -> list[UnverifiedGate]:
    """:func:`swarmd.memory.verification.unverified_gates` of the daemon's store
    when it is in this machine's data directory, else ``[]`` (status runs on
    another host: its Redis has no such list), or when the config cannot be
    loaded (status reports the daemon, whatever this shell's config)."""
    try:
        config = load_config(args.config)
    except ConfigError:
        return []
    path = default_db(args.config, args.data_dir)
    if not os.path.exists(path):
        return []
    memory = Memory(path)
    try:
        return unverified_gates(memory, config.memory.min_verified)
    finally:
        memory.close()


def cmd_status(args: argparse.Namespace) -> int:
    """Daemon liveness, queues, workers, objectives by state, today's spend; 3 when not alive."""
    try:
        config = load_config(args.config)
    except ConfigError:
        config = None       # status reports the daemon whatever this shell's config; no tier health then
    data = status_data(connect(args), config)
    data["unverified_gates"] = [g.to_json() for g in _unverified_gates(args)]
    conf = probe()  # this machine's: swarmctl runs beside the daemon
    data["sandbox"] = {"kind": conf.kind, "available": conf.available, "reason": conf.reason}
    d = data["daemon"]
    if args.json:
        print(json.dumps(data))
        return EXIT_OK if d["alive"] else EXIT_UNREACHABLE
    out.print(f"daemon: {'[green]alive[/]' if d['alive'] else '[red]not running[/]'}"
              + (f"  pid {d['pid']} on {d['host']}, up {d['uptime_s']:.0f}s" if d["alive"] else ""))
    out.print("queues: " + ", ".join(f"{k} {v}" for k, v in data["queues"].items()))
    out.print("objectives: " + ", ".join(f"{k} {v}" for k, v in data["objectives"].items()))
    if any(data["malformed"].values()):
        out.print("[yellow]malformed stream entries skipped:[/] "
                  + ", ".join(f"{k} {v}" for k, v in data["malformed"].items()))
    out.print(f"sandbox: {'[green]' if conf.available else '[red]'}{conf.reason}[/]")
    for gate in data["unverified_gates"]:
        out.print(f"[yellow]unverified gate:[/] {escape(UnverifiedGate(**gate).sentence())}")
    for warning in data["warnings"]:
        err.print(f"[yellow]warning:[/] {escape(warning)}")
    workers = table("worker", "state", "current job", title="workers")
    for w in data["workers"]:
        workers.add_row(w["name"], w["state"], w["current_job"] or "-")
    out.print(workers)
    if data["tiers"]:
        out.print(_tier_health_table(data["tiers"]))
    tiers = table("tier", "calls", "cost (USD)",
                  title=f"today (UTC day, as the daily budget): ${data['spend_today_usd']:.4f}")
    for tier, v in data["by_tier_today"].items():
        tiers.add_row(tier, str(v["calls"]), f"{v['cost_usd']:.6f}")
    out.print(tiers)
    return EXIT_OK if d["alive"] else EXIT_UNREACHABLE


def _tier_health_table(tiers: list[dict]):
    """``status``'s table of :func:`swarmd.daemon.health.tier_health`."""
    def yes(value, yes_text="yes", no_text="[red]no[/]"):
        return "-" if value is None else (yes_text if value else no_text)
    health = table("tier", "model", "up", "reachable", "key", "model loaded", "cooling down", title="tier health")
    for t in tiers:
        cooling = t["cooling_down"]
        health.add_row(t["tier"], t["model"], yes(t["up"], "[green]up[/]", "[red]down[/]"),
                       yes(t["reachable"]) + (f" ({escape(t['problem'])})" if t["problem"] and t["reachable"] is False
                                              else ""),
                       yes(t["key_present"]), t["model_loaded"] or "-",
                       f"until {time.strftime('%H:%M:%S', time.gmtime(cooling['until']))} UTC"
                       if cooling else "-")
    return health


#: Final states without an accepted answer: ``show`` exits 1 on them (:data:`swarmd.errors.EXIT_RULE`).
NO_ANSWER_STATES = tuple(s for s in FINAL_STATES if s != "done")


def mirrored_record(client, objective_id: str) -> dict:
    """One objective as its Redis mirror (:func:`swarmd.constants.objective_key`)
    holds it, for ``show`` where the store is not reachable: the hash's fields
    (``state``, ``action`` when known, ``reason``, ``result`` as a dict), ``id``,
    and the store's result fields (:data:`~swarmd.daemon.store.RESULT_FIELDS`:
    answer, confidence, tier, model, cost_usd (USD), escalations, reason; ``None``
    when not mirrored) taken from ``result`` unless the hash has them itself, so
    ``show`` prints and ``--json`` gives the same keys as from the store.
    Raises :class:`~swarmd.errors.BadInput` when Redis has no such objective."""
    raw = client.hgetall(K.objective_key(objective_id))
    if not raw:
        raise BadInput(f"no objective {objective_id!r}")
    record = {k.decode(): v.decode() for k, v in raw.items()}
    record["id"] = objective_id
    result = record["result"] = json.loads(record["result"]) if "result" in record else {}
    for key in RESULT_FIELDS:
        if record.get(key) is None:
            record[key] = result.get(key)
    return record


def cmd_show(args: argparse.Namespace) -> int:
    """One objective: its result and every attempt (from the store, else Redis);
    1 when it ended without an answer (:data:`NO_ANSWER_STATES`)."""
    config = load_config(args.config)
    path = db_path(data_dir(args.data_dir, create=False), config.storage.db)
    record = None
    if path.exists():
        store = Store(path)
        try:
            record = store.get(args.id)
        finally:
            store.close()
    if record is None:
        record = mirrored_record(connect(args), args.id)
    record["verification"] = (record["result"].get("verification") if "result" in record
                              else verification_of(record.get("state"), record.get("tier"), record.get("attempts") or []))
    code = EXIT_UNRESOLVED if record.get("state") in NO_ANSWER_STATES else EXIT_OK
    if args.json:
        print(json.dumps(record))
        return code
    out.print(f"[bold]{record['id']}[/] {record.get('action', '')}: {record.get('state')}")
    print_fields((key, record.get(key)) for key in
                 ("strategy", "answer", "confidence", "tier", "model", "cost_usd", "escalations", "reason"))
    if record["verification"] == "unverified":
        out.print(f"[yellow]unverified:[/] {UNVERIFIED}")
    elif record["verification"]:
        print_fields([("verification", record["verification"])])
    if record.get("attempts"):
        attempts = table("tier", "model", "answer", "confidence", "threshold", "cost (USD)", "latency ms",
                         "outcome", title="attempts")
        for a in record["attempts"]:
            conf = "-" if a.get("confidence") is None else f"{a['confidence']:.3f}"
            gate = "-" if a.get("threshold") is None else f"{a['threshold']:.3f}"
            attempts.add_row(a["tier"], a["model"], str(a.get("answer")), conf, gate, f"{a['cost_usd']:.6f}",
                             f"{a['latency_ms']:.0f}", _outcome(a))
        out.print(attempts)
    if record.get("skipped"):
        skipped = table("tier", "model", "why", "detail", title="skipped")
        for s in record["skipped"]:
            skipped.add_row(s["tier"], s["model"], _skip_kind(s), escape(s.get("detail") or ""))
        out.print(skipped)
    if record.get("state") == "awaiting_approval":
        _print_changes(_parked_changes(args, record["id"]))
    return code


def _parked_changes(args: argparse.Namespace, objective_id: str) -> dict | None:
    """The workspace changes kept in a park record (``loop["changes"]``), or ``None``."""
    try:
        rec = approvals.load(connect(args), objective_id)
    except RedisError:
        return None
    return (rec or {}).get("loop", {}).get("changes")


def _print_changes(changes: dict | None) -> None:
    """The workspace change set of an agent objective (see :mod:`swarmd.agent.changes`):
    applied count, refused and pending entries with their rules, the pending ones' diff."""
    if not changes:
        return
    out.print(f"workspace changes: {changes.get('applied', 0)} applied, {len(changes.get('refused') or [])} "
              f"refused, {len(changes.get('pending') or [])} awaiting approval", markup=False)
    for path, rule in changes.get("refused") or []:
        out.print(f"  refused  {path}  ({rule})", markup=False)
    for op, path, rule in changes.get("pending") or []:
        out.print(f"  pending  {op} {path}  ({rule})", markup=False)
    if changes.get("diff"):
        out.print(changes["diff"], markup=False, highlight=False)


def _outcome(attempt: dict) -> str:
    """An attempt's outcome as ``show`` prints it: ``below gate`` added to an answer the
    quality gate did not accept (confidence under its threshold)."""
    outcome = attempt.get("outcome") or "-"
    conf, gate = attempt.get("confidence"), attempt.get("threshold")
    if outcome in ("rejected", "escalated", "low") and conf is not None and gate is not None and conf < gate:
        return f"{outcome} (below gate)"
    return outcome


def _skip_kind(skip: dict) -> str:
    """A skipped model's ``reason_kind`` with its cap (budget) or the end of its cool-down (UTC)."""
    kind = skip.get("reason_kind", "?")
    if skip.get("cap"):
        return f"{kind} ({skip['cap']} cap)"
    if skip.get("until"):
        return f"{kind} until {time.strftime('%H:%M:%S', time.gmtime(skip['until']))} UTC"
    return kind


# --------------------------------------------------------------------------- logs


def cmd_logs(args: argparse.Namespace) -> int:
    """Print the last ``--lines`` lines of the daemon log; with ``-f`` keep
    printing lines as they are written (polling every :data:`POLL_S` s),
    across rotations of the file, until interrupted."""
    if args.lines < 0:
        raise BadInput(f"--lines must be >= 0, found {args.lines}")
    config = load_config(args.config)
    path = db_path(data_dir(args.data_dir, create=False), config.daemon.log.path)
    if not path.exists():
        raise BadInput(f"no log at {path} (has the daemon run with this --data-dir?)")
    fh = open(path, "rb")  # noqa: SIM115 - reopened on rotation, closed below
    try:
        last = deque(fh, maxlen=args.lines) if args.lines else ()
        _write(b"".join(last))
        while args.follow:
            line = fh.readline()
            if line:
                _write(line)
            elif _replaced(path, fh):       # rotated (renamed, a new file written) or truncated
                fh.close()
                fh = open(path, "rb")  # noqa: SIM115
            else:
                time.sleep(POLL_S)
    finally:
        fh.close()
    return EXIT_OK


def _write(data: bytes) -> None:
    sys.stdout.write(data.decode("utf-8", errors="replace"))
    sys.stdout.flush()


def _replaced(path, fh) -> bool:
    """Whether ``path`` now names another file than ``fh`` (rotation) or one
    shorter than what was read (truncation); ``False`` while it is missing."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    return now.st_ino != os.fstat(fh.fileno()).st_ino or now.st_size < fh.tell()
