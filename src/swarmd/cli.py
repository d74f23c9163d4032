"""``swarmctl``: the swarmd command line.

Exit codes: 0 ok, 1 an answer was unresolved (``ask`` only), 2 bad input
(malformed config, file or arguments), 3 daemon unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

from swarmd.config import ConfigError, load_config
from swarmd.costs.cli import register as register_costs
from swarmd.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_UNREACHABLE, EXIT_UNRESOLVED, BadInput, Unreachable

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def _labels(text: str | None) -> tuple[str, ...]:
    return tuple(l.strip() for l in text.split(",")) if text else ()


def read_jsonl(path: str, required: tuple[str, ...]) -> list[dict]:
    """Every line of a JSONL file as a dict, checked before any is used.

    Raises :class:`BadInput` listing each bad line as ``file:line: reason``.
    """
    try:
        raw = Path(path).read_bytes() if path != "-" else sys.stdin.buffer.read()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror}") from None
    items, problems = [], []
    for n, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            problems.append(f"{path}:{n}: not UTF-8")
            continue
        except ValueError as exc:
            problems.append(f"{path}:{n}: not JSON ({exc.msg})")
            continue
        if not isinstance(item, dict):
            problems.append(f"{path}:{n}: expected a JSON object, found {type(item).__name__}")
            continue
        missing = [k for k in required if not isinstance(item.get(k), str) or not item[k].strip()]
        if missing:
            problems.append(f"{path}:{n}: missing or empty string field(s): {', '.join(missing)}")
            continue
        items.append(item)
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise BadInput("\n".join(shown))
    if not items:
        raise BadInput(f"{path}: no items")
    return items


# --------------------------------------------------------------------------- ask


def cmd_ask(args: argparse.Namespace) -> int:
    """Route one input (``--input``) or a JSONL file (``--file``) through the router."""
    from swarmd.paths import data_dir, db_path
    from swarmd.costs import Ledger
    from swarmd.router import RequestError, Router

    config = load_config(args.config)
    labels = _labels(args.labels)
    if args.file:
        items = read_jsonl(args.file, ("id", "text"))
    elif args.input is not None:
        if not args.input.strip():
            raise BadInput("--input is empty")
        items = [{"id": None, "text": args.input}]
    else:
        raise BadInput("give --input TEXT or --file items.jsonl")
    ledger = None if args.no_ledger else Ledger(db_path(data_dir(args.data_dir), config.storage.db),
                                                write_behind=True)
    router = Router(config, ledger)
    try:
        router.check_request(args.action, labels)
    except RequestError as exc:
        raise BadInput(str(exc)) from None
    unresolved = 0
    try:
        if args.file:
            from rich.progress import Progress
            with Progress(console=err, transient=True) as progress:
                task = progress.add_task(f"{args.action}", total=len(items))
                for item in items:
                    item_labels = _labels(item["labels"]) if isinstance(item.get("labels"), str) else labels
                    result = router.route(args.action, item["text"], item_labels, request_id=item["id"])
                    unresolved += result.status != "accepted"
                    print(json.dumps(result.to_json()), flush=True)
                    progress.advance(task)
            err.print(f"{len(items)} items, {unresolved} unresolved")
        else:
            result = router.route(args.action, items[0]["text"], labels)
            unresolved = result.status != "accepted"
            if args.json:
                print(json.dumps(result.to_json()))
            else:
                _print_result(result)
    finally:
        router.close()
        if ledger is not None:
            ledger.close()                      # writes the rows still queued
    return EXIT_UNRESOLVED if unresolved and not args.file else EXIT_OK


def _print_result(result) -> None:
    from rich.table import Table
    table = Table(show_header=False, box=None)
    for key, value in [("answer", result.answer), ("confidence", f"{result.confidence:.3f}"),
                       ("status", result.status + (f" ({result.reason})" if result.reason else "")),
                       ("tier", result.tier), ("model", result.model), ("escalations", result.escalations),
                       ("cost", f"${result.cost_usd:.6f}"), ("latency", f"{result.latency_ms:.0f} ms")]:
        table.add_row(f"[bold]{key}[/]", str(value))
    out.print(table)
    for skipped in result.skipped:
        err.print(f"[yellow]skipped[/] {skipped}")


# --------------------------------------------------------------------------- daemon commands


def _redis(args: argparse.Namespace):
    """A Redis client for the daemon's Redis: --redis-url, $REDIS_URL, the data
    dir's ``redis.url`` (written by the daemon), the config, else localhost."""
    import os

    from redis import Redis
    from redis.exceptions import RedisError

    from swarmd.daemon.redis_server import mask_url, read_url_file
    from swarmd.paths import data_dir

    url = getattr(args, "redis_url", None) or os.environ.get("REDIS_URL") or read_url_file(data_dir(args.data_dir))
    if not url:
        url = load_config(args.config).daemon.redis_url or "redis://127.0.0.1:6379/0"
    client = Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
    try:
        client.ping()
    except RedisError as exc:
        raise Unreachable(f"cannot reach Redis at {mask_url(url)}: {exc}. Is swarmd running? "
                          f"(start it with `swarmd --workers 1`, or pass --data-dir of the running daemon)") from None
    return client


def cmd_submit(args: argparse.Namespace) -> int:
    """Validate objectives and push them onto the objective stream (one pipeline)."""
    from swarmd import constants as K
    from swarmd.objectives import ObjectiveError, validate

    config = load_config(args.config)
    if args.file:
        raws = read_jsonl(args.file, ())
        where = [f"{args.file}: objective {i}" for i in range(1, len(raws) + 1)]
    elif args.text is not None or args.input is not None:
        raw = {"input": args.input if args.input is not None else args.text}
        if args.action:
            raw["action"] = args.action
        for key in ("labels", "priority", "max_cost_usd", "id"):
            if getattr(args, key) is not None:
                raw[key] = getattr(args, key)
        if args.tag:
            raw["tags"] = args.tag
        raws, where = [raw], ["objective"]
    else:
        raise BadInput("give the objective text, --input TEXT with --action, or --file objectives.jsonl")
    objectives, problems = [], []
    for raw, label in zip(raws, where):
        try:
            objectives.append(validate(raw, config))
        except ObjectiveError as exc:
            problems.append(f"{label}: {exc}")
    ids = [o.id for o in objectives]
    if len(set(ids)) != len(ids):
        problems.append("duplicate ids in this batch")
    if problems:
        raise BadInput("nothing submitted:\n" + "\n".join(problems[:20]))
    client = _redis(args)
    pipe = client.pipeline(transaction=True)
    for obj in objectives:
        pipe.hset(K.objective_key(obj.id), mapping={"state": "submitted", "action": obj.action})
        pipe.xadd(K.OBJECTIVE_STREAM, {"objective": json.dumps(obj.to_dict())})
    pipe.execute()
    if not args.wait:
        for oid in ids:
            print(oid)
        return EXIT_OK
    err.print(f"submitted {len(ids)} objective(s)")
    return _wait(client, ids, args.timeout)


def _wait(client, ids: list[str], timeout: float | None) -> int:
    """Progress bar until every objective is final or parked awaiting approval
    (which needs a person: `swarmctl approvals`); then a summary."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from swarmd import constants as K
    from swarmd.objectives import FINAL_STATES

    settled = (*FINAL_STATES, "awaiting_approval")
    states: dict[str, str] = {}
    deadline = time.monotonic() + timeout if timeout else None
    with Progress(TextColumn("objectives"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err) as progress:
        task = progress.add_task("wait", total=len(ids))
        while True:
            pending = [i for i in ids if states.get(i) not in settled]
            if not pending:
                break
            if deadline and time.monotonic() > deadline:
                break
            pipe = client.pipeline(transaction=False)
            for oid in pending:
                pipe.hget(K.objective_key(oid), "state")
            for oid, state in zip(pending, pipe.execute()):
                states[oid] = state.decode() if state else "unknown"
            progress.update(task, completed=sum(states.get(i) in settled for i in ids))
            time.sleep(0.5)
    summary: dict[str, int] = {}
    for oid in ids:
        summary[states.get(oid, "unknown")] = summary.get(states.get(oid, "unknown"), 0) + 1
    out.print("  ".join(f"{k}: {v}" for k, v in sorted(summary.items())))
    done = all(states.get(i) in settled for i in ids)
    if not done:
        err.print("[yellow]timed out before every objective finished[/]")
    elif any(states.get(i) == "awaiting_approval" for i in ids):
        err.print("some objectives await approval: see `swarmctl approvals`")
    return EXIT_OK if done else EXIT_UNRESOLVED


def status_data(client) -> dict:
    """The ``status --json`` document (see ``swarmctl status --help``)."""
    import time

    from rq import Worker

    from swarmd import constants as K
    from swarmd.objectives import STATES
    from swarmd.workers.parking import queue_depths

    hb = {k.decode(): v.decode() for k, v in client.hgetall(K.HEARTBEAT).items()}
    now = time.time()
    alive = bool(hb) and now - float(hb.get("ts", 0)) < 3 * float(hb.get("interval_s", 2)) + 1
    workers = []
    for w in Worker.all(connection=client):
        job = w.get_current_job_id()
        workers.append({"name": w.name, "state": w.get_state(), "current_job": job,
                        "queues": [q.name for q in w.queues]})
    return {
        "daemon": {"alive": alive, "pid": int(hb["pid"]) if hb.get("pid") else None, "host": hb.get("host"),
                   "uptime_s": round(now - float(hb["started_at"]), 1) if alive else 0.0},
        "queues": queue_depths(client),
        "workers": workers,
        "objectives": json.loads(hb["counts"]) if hb.get("counts") else {s: 0 for s in STATES},
        "spend_today_usd": float(hb.get("spend_today_usd", 0.0)),
        "by_tier_today": json.loads(hb["by_tier_today"]) if hb.get("by_tier_today") else {},
    }


def cmd_status(args: argparse.Namespace) -> int:
    """Daemon liveness, queues, workers, objectives by state, today's spend."""
    from rich.table import Table

    data = status_data(_redis(args))
    if args.json:
        print(json.dumps(data))
        return EXIT_OK if data["daemon"]["alive"] else EXIT_UNREACHABLE
    d = data["daemon"]
    out.print(f"daemon: {'[green]alive[/]' if d['alive'] else '[red]not running[/]'}"
              + (f"  pid {d['pid']} on {d['host']}, up {d['uptime_s']:.0f}s" if d["alive"] else ""))
    out.print("queues: " + ", ".join(f"{k} {v}" for k, v in data["queues"].items()))
    out.print("objectives: " + ", ".join(f"{k} {v}" for k, v in data["objectives"].items()))
    table = Table("worker", "state", "current job", title="workers")
    for w in data["workers"]:
        table.add_row(w["name"], w["state"], w["current_job"] or "-")
    out.print(table)
    tiers = Table("tier", "calls", "cost (USD)", title=f"today (UTC day, as the daily budget): ${data['spend_today_usd']:.4f}")
    for tier, v in data["by_tier_today"].items():
        tiers.add_row(tier, str(v["calls"]), f"{v['cost_usd']:.6f}")
    out.print(tiers)
    return EXIT_OK if d["alive"] else EXIT_UNREACHABLE


def cmd_show(args: argparse.Namespace) -> int:
    """One objective: its result and every attempt (from the store, else Redis)."""
    from swarmd.paths import data_dir, db_path
    from swarmd.store.objectives import Store

    config = load_config(args.config)
    path = db_path(data_dir(args.data_dir), config.storage.db)
    record = Store(path).get(args.id) if path.exists() else None
    if record is None:
        from swarmd import constants as K
        raw = _redis(args).hgetall(K.objective_key(args.id))
        if not raw:
            raise BadInput(f"no objective {args.id!r}")
        record = {k.decode(): v.decode() for k, v in raw.items()}
        record["id"] = args.id
        if "result" in record:
            record["result"] = json.loads(record["result"])
    if args.json:
        print(json.dumps(record))
        return EXIT_OK
    from rich.table import Table
    out.print(f"[bold]{record['id']}[/] {record.get('action', '')}: {record.get('state')}")
    for key in ("answer", "confidence", "tier", "model", "cost_usd", "escalations", "reason"):
        if record.get(key) is not None:
            out.print(f"  {key}: {record[key]}")
    if record.get("attempts"):
        table = Table("tier", "model", "answer", "confidence", "cost (USD)", "latency ms", "outcome", title="attempts")
        for a in record["attempts"]:
            conf = "-" if a.get("confidence") is None else f"{a['confidence']:.3f}"
            table.add_row(a["tier"], a["model"], str(a.get("answer")), conf, f"{a['cost_usd']:.6f}",
                          f"{a['latency_ms']:.0f}", a["outcome"])
        out.print(table)
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    """Print (and with -f, follow) the daemon log."""
    import time

    from swarmd.paths import data_dir

    config = load_config(args.config)
    path = Path(config.daemon.log.path)
    path = path if path.is_absolute() else data_dir(args.data_dir) / path
    if not path.exists():
        raise BadInput(f"no log at {path} (has the daemon run with this --data-dir?)")
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = fh.readlines()
        sys.stdout.write("".join(lines[-args.lines:]))
        sys.stdout.flush()
        while args.follow:
            line = fh.readline()
            if line:
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                time.sleep(0.3)
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The ``swarmctl`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="swarmctl",
        description="Control swarmd: route LLM calls through cheap tiers first, check agent actions, "
                    "and see what it all cost.",
        epilog="Exit codes: 0 ok, 1 unresolved answer, 2 bad input, 3 daemon unreachable.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="llm_config.yaml to use (default: $SWARMD_CONFIG, ./llm_config.yaml)")
    parser.add_argument("--data-dir", help="data directory (default: $SWARMD_DATA_DIR or ~/.local/share/swarmd)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    ask = sub.add_parser(
        "ask", help="route one input or a JSONL file through the tiered router",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Send inputs to the cheapest tier that answers them well, escalating while the "
                    "quality gate's confidence is below the threshold. Every call is written to the "
                    "cost ledger in the data directory.",
        epilog="examples:\n"
               "  swarmctl ask --action classify --labels feat,fix,docs --input 'fix crash on empty file'\n"
               "  swarmctl ask --action yes_no --input 'Is 9 a prime number?' --json\n"
               "  swarmctl ask --action classify --labels feat,fix --file items.jsonl > results.jsonl\n"
               "\nitems.jsonl has one {\"id\": ..., \"text\": ...} object per line (optional \"labels\": \"a,b\").\n"
               "--json keys: id, answer, confidence, tier, model, status, escalations, cost_usd, latency_ms")
    ask.add_argument("--action", required=True, help="an action from llm_config.yaml (classify, yes_no, summarize, ...)")
    ask.add_argument("--labels", help="comma-separated label set for classify/tag, e.g. feat,fix,docs")
    src = ask.add_mutually_exclusive_group()
    src.add_argument("--input", help="the text to process")
    src.add_argument("--file", help="JSONL file of {id, text} items ('-' for stdin); one JSON result per line on stdout")
    ask.add_argument("--json", action="store_true", help="print the result as one JSON object")
    ask.add_argument("--no-ledger", action="store_true", help="do not write calls to the cost ledger")
    ask.set_defaults(func=cmd_ask)

    submit = sub.add_parser(
        "submit", help="push objectives to the daemon",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Validate objectives and push them onto the daemon's objective stream. Nothing is "
                    "submitted if any objective is invalid; each problem is reported with its reason.",
        epilog="examples:\n"
               "  swarmctl submit --action classify --labels feat,fix,docs --input 'fix crash on empty file'\n"
               "  swarmctl submit --file objectives.jsonl --wait\n"
               "\nobjectives.jsonl: one object per line with action, input, and optionally id, labels,\n"
               "priority (high|normal|low), max_cost_usd, tags.")
    submit.add_argument("text", nargs="?", help="free-text objective (needs the planner; give --action for now)")
    submit.add_argument("--action", help="action from llm_config.yaml")
    submit.add_argument("--input", help="the objective's input text")
    submit.add_argument("--labels", help="comma-separated labels for classify/tag")
    submit.add_argument("--priority", choices=("high", "normal", "low"))
    submit.add_argument("--max-cost-usd", type=float, dest="max_cost_usd", help="cost cap for this objective (USD)")
    submit.add_argument("--id", help="objective id (default: generated)")
    submit.add_argument("--tag", action="append", help="tag (repeatable)")
    submit.add_argument("--file", help="JSONL file of objectives ('-' for stdin), submitted in one pipeline")
    submit.add_argument("--wait", action="store_true", help="show a progress bar until all are final, then a summary")
    submit.add_argument("--timeout", type=float, help="with --wait: give up after this many seconds")
    submit.add_argument("--redis-url", help="Redis of the daemon (default: from --data-dir, $REDIS_URL, config)")
    submit.set_defaults(func=cmd_submit)

    status = sub.add_parser("status", help="daemon, queues, workers, objectives by state, today's spend",
                            description="Show whether the daemon is alive, queue depths, workers and what each "
                                        "is doing, objectives by state, and today's (UTC) spend and calls by tier. "
                                        "--json keys: daemon{alive,uptime_s,pid,host}, queues, workers, "
                                        "objectives{queued,running,done,failed,unresolved}, spend_today_usd, "
                                        "by_tier_today. Exit 3 when the daemon is not alive.")
    status.add_argument("--json", action="store_true")
    status.add_argument("--redis-url")
    status.set_defaults(func=cmd_status)

    show = sub.add_parser("show", help="one objective's result and attempts")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    show.add_argument("--redis-url")
    show.set_defaults(func=cmd_show)

    logs = sub.add_parser("logs", help="print the daemon log (daemon_hybrid.log)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("-n", "--lines", type=int, default=50, help="lines to show first (default 50)")
    logs.set_defaults(func=cmd_logs)

    register_costs(sub)   # report, cost-analysis
    try:
        from swarmd.governor.cli import register as register_governor
    except ImportError:
        pass
    else:
        register_governor(sub)
        from swarmd.governor.cli_approvals import register as register_approvals
        register_approvals(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``swarmctl``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        err.print(f"[red]config error:[/] {exc}")
        return EXIT_BAD_INPUT
    except BadInput as exc:
        err.print(f"[red]bad input:[/] {exc}")
        return EXIT_BAD_INPUT
    except Unreachable as exc:
        err.print(f"[red]unreachable:[/] {exc}")
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
