"""Worker-side batching (swarmd.workers.batching): queued label objectives of one
action and label set are routed in one model pass, each job still completed on its own.

Real Redis, real RQ worker (:class:`swarmd.workers.context.ContextWorker`, in
this process, burst mode), the echo provider for the model (it answers
batches: ``classify_batch``).  The killed-mid-batch test runs ``swarmd
--workers 1`` as a real process.  One test (``slow``) compares the real
model's batched answers and confidences with its unbatched ones.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry

from swarmd import queue as Q
from swarmd.config import load_config
from swarmd.router import Router
from swarmd.router.providers import ProviderError, make_provider
from swarmd.router.providers.echo import EchoProvider
from swarmd.workers.context import ContextWorker, WorkerContext
from swarmd.queue import JOB_FUNC
from tests.daemon.helpers import ROOT, wait_final, write_config
from tests.faults.helpers import Swarmd, echo_config, finished_counts, rows
from tests.wait import LONG_S, wait_until


class PoisonedEcho(EchoProvider):
    """The echo provider, except that a prompt whose body holds ``poison`` fails (as a model call can)."""

    def classify_batch(self, prompts):
        return [ProviderError("poisoned") if "poison" in p.body else self.classify(p) for p in prompts]


def _context(tmp_path, redis_conn, batch_max: int, factory=make_provider, fast_provider="echo") -> WorkerContext:
    path = write_config(tmp_path, fast_provider=fast_provider)
    assert "batch_max: 8" in path.read_text()
    path.write_text(path.read_text().replace("batch_max: 8", f"batch_max: {batch_max}"))
    config = load_config(path, env={"ANTHROPIC_API_KEY": "", "OLLAMA_HOST": "http://127.0.0.1:9"})
    return WorkerContext(config, Router(config, provider_factory=factory), redis_conn, tmp_path, "w-batch")


def _spy_batches(ctx: WorkerContext) -> list[list[str]]:
    """Record the objective ids of each route_many call of the context's (real) router."""
    calls, real = [], ctx.router.route_many

    def spy(action, texts, labels=(), **kw):
        calls.append(list(kw["objective_ids"]))
        return real(action, texts, labels, **kw)

    ctx.router.route_many = spy
    return calls


def _enqueue(redis_conn, objectives: list[dict]):
    """Enqueue as the daemon does: one job per objective, job id = objective id."""
    queue = Q.queue("default", redis_conn)
    for obj in objectives:
        queue.enqueue(JOB_FUNC, obj, job_id=obj["id"])
    return queue


def _events(redis_conn) -> list[tuple[str, str, dict]]:
    return [(f[b"kind"].decode(), f[b"id"].decode(), json.loads(f[b"payload"]))
            for _i, f in redis_conn.xrange(Q.EVENT_STREAM)]


def _objective(oid: str, labels=("feat", "fix"), text: str | None = None) -> dict:
    return {"id": oid, "action": "classify", "input": text or f"message {oid}", "labels": list(labels)}


def test_label_objectives_are_claimed_by_label_set_and_each_job_is_finished_once(tmp_path, redis_conn):
    ctx = _context(tmp_path, redis_conn, batch_max=4)
    calls = _spy_batches(ctx)
    order = ["b0", "b1", "x0", "b2", "b3", "x1", "b4", "b5", "b6"]
    queue = _enqueue(redis_conn, [_objective(o, ("docs", "test") if o[0] == "x" else ("feat", "fix")) for o in order])
    ContextWorker([queue], ctx, connection=redis_conn, name="w-batch").work(burst=True)

    # the first job takes up to batch_max - 1 more of its label set; the other label set waits its turn
    assert calls == [["b0", "b1", "b2", "b3"], ["x0", "x1"], ["b4", "b5", "b6"]]
    events = _events(redis_conn)
    assert Counter((k, i) for k, i, _p in events) == Counter({(k, o): 1 for o in order for k in ("started", "finished")})
    answers = {i: p["result"]["answer"] for k, i, p in events if k == "finished"}
    assert answers == {o: "docs" if o[0] == "x" else "feat" for o in order}
    assert {p["state"] for k, _i, p in events if k == "finished"} == {"done"}
    # RQ's bookkeeping: every job finished, nothing left started or failed, no execution left on the worker
    assert sorted(FinishedJobRegistry(queue=queue).get_job_ids()) == sorted(order)
    assert StartedJobRegistry(queue=queue).get_job_ids() == [] and FailedJobRegistry(queue=queue).count == 0
    assert redis_conn.scard("rq:worker:w-batch:executions") == 0
    assert ctx.routed == {}


def test_batch_max_1_routes_each_objective_on_its_own(tmp_path, redis_conn):
    ctx = _context(tmp_path, redis_conn, batch_max=1)
    calls = _spy_batches(ctx)
    queue = _enqueue(redis_conn, [_objective(f"s{i}") for i in range(4)])
    ContextWorker([queue], ctx, connection=redis_conn).work(burst=True)
    assert calls == []
    assert [(k, i) for k, i, _p in _events(redis_conn)] == [(k, f"s{i}") for i in range(4)
                                                            for k in ("started", "finished")]


@pytest.mark.parametrize("batch_max", [1, 8])
def test_an_objective_reported_final_already_is_not_run_again(tmp_path, redis_conn, batch_max):
    """A job run again after its worker reported the objective final (and died
    before RQ recorded the job) writes no event and routes nothing, batched
    (route_ahead's check) or alone (jobs.start: the check and ``started`` in one script)."""
    ctx = _context(tmp_path, redis_conn, batch_max=batch_max)
    calls = _spy_batches(ctx)
    redis_conn.set(Q.finished_key("r1"), "done")           # what the first run's finished event left
    queue = _enqueue(redis_conn, [_objective(f"r{i}") for i in range(3)])
    ContextWorker([queue], ctx, connection=redis_conn).work(burst=True)
    assert [(k, i) for k, i, _p in _events(redis_conn)] == \
        ([(k, i) for i in ("r0", "r2") for k in ("started", "finished")] if batch_max == 1 else
         [("started", "r0"), ("started", "r2"), ("finished", "r0"), ("finished", "r2")])
    assert calls == ([] if batch_max == 1 else [["r0", "r2"]])
    assert sorted(FinishedJobRegistry(queue=queue).get_job_ids()) == ["r0", "r1", "r2"]
    assert queue.fetch_job("r1").return_value()["duplicate"] is True


def test_one_failing_objective_fails_alone(tmp_path, redis_conn, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")      # the next tiers cannot answer either
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)

    def factory(model, cooldown_s):
        return PoisonedEcho(model) if model.provider == "echo" else make_provider(model, cooldown_s)

    ctx = _context(tmp_path, redis_conn, batch_max=8, factory=factory)
    calls = _spy_batches(ctx)
    broken = {"id": "broken", "action": "classify", "labels": ["feat", "fix"]}       # no input: its job raises
    objectives = [_objective("g0"), broken, _objective("g1"), _objective("poison", text="poison pill"),
                  _objective("g2")]
    queue = _enqueue(redis_conn, objectives)
    ContextWorker([queue], ctx, connection=redis_conn).work(burst=True)

    assert calls == [["g0", "g1", "poison", "g2"]]               # the unreadable one is not batched
    finished = {i: p for k, i, p in _events(redis_conn) if k == "finished"}
    assert {i: p["state"] for i, p in finished.items()} == {"g0": "done", "g1": "done", "g2": "done",
                                                            "poison": "unresolved"}
    assert finished["poison"]["attempts"][0]["error"] == "poisoned"
    assert FailedJobRegistry(queue=queue).get_job_ids() == ["broken"]
    assert sorted(FinishedJobRegistry(queue=queue).get_job_ids()) == ["g0", "g1", "g2", "poison"]


def test_a_batch_that_cannot_be_routed_together_is_routed_one_by_one(tmp_path, redis_conn):
    ctx = _context(tmp_path, redis_conn, batch_max=8)
    tried = []

    def broken_route_many(*args, **kw):
        tried.append(list(kw["objective_ids"]))
        raise RuntimeError("batched decode broke")

    ctx.router.route_many = broken_route_many
    queue = _enqueue(redis_conn, [_objective(f"f{i}") for i in range(3)])
    ContextWorker([queue], ctx, connection=redis_conn).work(burst=True)
    assert tried == [["f0", "f1", "f2"]]                 # the batch was claimed and its one call failed
    events = _events(redis_conn)
    assert sorted(i for k, i, p in events if k == "finished" and p["state"] == "done") == ["f0", "f1", "f2"]
    # route_ahead reported "started"; the jobs routing alone report it no second time
    assert Counter(i for k, i, _p in events if k == "started") == Counter(["f0", "f1", "f2"])
    assert sorted(FinishedJobRegistry(queue=queue).get_job_ids()) == ["f0", "f1", "f2"]


def test_worker_killed_mid_batch_loses_nothing_and_runs_nothing_twice(tmp_path, redis_url, redis_conn):
    """``swarmd --workers 1`` (echo provider, job retries after 1 s) whose worker SIGKILLs itself once
    in a batch, after its first job completed: the other jobs of the batch are handed back to RQ,
    retried by the restarted worker, and every objective is finished exactly once."""
    mark = tmp_path / "killed"
    daemon = Swarmd(tmp_path, echo_config(tmp_path), workers=1, redis_url=redis_url,
                    SWARMD_FAILPOINT="worker_mid_batch", SWARMD_FAILPOINT_MARK=str(mark))
    batch = rows("mid", 6)
    ids = [r["id"] for r in batch]
    try:
        daemon.start()
        daemon.submit(batch)
        records = wait_final(daemon.data / "memory.db", ids)
        wait_until(lambda: len(finished_counts(redis_conn)) == len(ids), LONG_S, "every finished event")
    finally:
        daemon.close()
    assert {r["state"] for r in records.values()} == {"done"}
    assert finished_counts(redis_conn) == Counter(dict.fromkeys(ids, 1))          # each exactly once
    assert mark.read_text() == "mid-1"             # killed after mid-0 completed, before mid-1 ran
    log = daemon.log
    assert "exited with -9" in log
    # the kill left the rest of the batch registered as started by the dead worker: all handed back
    assert f"died running job(s) {', '.join(ids[1:])}; handed back to RQ now" in log


@pytest.mark.slow
def test_real_model_batched_answers_and_confidences_equal_the_unbatched_ones(tmp_path, redis_conn):
    """Eight commit messages through a real worker with the embedded model, batched
    (``batch_max: 8``, one route_many call) and one by one (``batch_max: 1``)."""
    labels = ("build", "chore", "ci", "docs", "feat", "fix", "perf", "refactor", "style", "test")
    lines = (ROOT / "examples" / "commits-commitizen.jsonl").read_text().splitlines()[:8]
    texts = [json.loads(line)["text"] for line in lines]
    outcome = {}
    for batch_max in (8, 1):
        ctx = _context(tmp_path, redis_conn, batch_max, fast_provider="llama_cpp")
        calls = _spy_batches(ctx)
        queue = _enqueue(redis_conn, [_objective(f"m{batch_max}-{i}", labels, t) for i, t in enumerate(texts)])
        ContextWorker([queue], ctx, connection=redis_conn).work(burst=True)
        ctx.close()
        assert [len(c) for c in calls] == ([8] if batch_max == 8 else [])
        finished = {i: p for k, i, p in _events(redis_conn) if k == "finished" and i.startswith(f"m{batch_max}-")}
        outcome[batch_max] = [(finished[f"m{batch_max}-{i}"]["result"]["answer"],
                               finished[f"m{batch_max}-{i}"]["result"]["confidence"],
                               finished[f"m{batch_max}-{i}"]["result"]["tier"],
                               finished[f"m{batch_max}-{i}"]["state"]) for i in range(len(texts))]
    assert outcome[8] == outcome[1]
    assert {tier for _a, _c, tier, _s in outcome[8]} == {"LOCAL_FAST"}
    assert len({answer for answer, *_ in outcome[8]}) > 1          # not one answer for everything


class UnsureEcho(EchoProvider):
    """The echo provider, unsure of every label (confidence 1/len(labels), under the gate), that
    runs ``on_batch()`` while it answers a batch: a cancel arriving during the batched call."""

    on_batch = None

    def classify(self, prompt):
        done = super().classify(prompt)
        done.label_probs = {label: 1 / len(prompt.labels) for label in prompt.labels}
        return done

    def classify_batch(self, prompts):
        if UnsureEcho.on_batch is not None:
            UnsureEcho.on_batch()
        return [self.classify(p) for p in prompts]


class CountingEcho(EchoProvider):
    """The echo provider (sure of the first label) for the tiers after LOCAL_FAST, keeping every prompt."""

    prompts: list[str] = []

    def classify(self, prompt):
        CountingEcho.prompts.append(prompt.body)
        return super().classify(prompt)


def test_an_objective_cancelled_during_its_batch_is_not_answered_nor_escalated(tmp_path, redis_conn, monkeypatch):
    """Three label objectives routed as one batch; ``c1`` is cancelled (swarmd.daemon.control.cancel)
    while the batched LOCAL_FAST call is in flight.  The other two escalate past the unsure
    LOCAL_FAST and are answered; ``c1``'s batched answer is not used and nothing after it is asked
    (no escalation, no charge): its worker reports it cancelled, with no attempt."""
    from swarmd.daemon import control
    from swarmd.objectives import mirror_state

    def factory(model, cooldown_s):
        return UnsureEcho(model) if model.provider == "echo" else CountingEcho(model)

    ctx = _context(tmp_path, redis_conn, batch_max=8, factory=factory)
    calls = _spy_batches(ctx)
    objectives = [_objective("c0", text="first text"), _objective("c1", text="cancelled text"),
                  _objective("c2", text="third text")]
    for obj in objectives:                                    # as admission leaves them: queued
        mirror_state(redis_conn, obj["id"], {"state": "queued", "action": "classify"}, 3600)
    cancels = []
    monkeypatch.setattr(UnsureEcho, "on_batch", lambda: cancels.append(
        control.cancel(redis_conn, None, "c1", "test", ctx.config)))
    monkeypatch.setattr(CountingEcho, "prompts", [])
    queue = _enqueue(redis_conn, objectives)
    ContextWorker([queue], ctx, connection=redis_conn).work(burst=True)

    assert calls == [["c0", "c1", "c2"]] and [c["was"] for c in cancels] == ["queued"]
    worker_final = {i: p for k, i, p in _events(redis_conn) if k == "finished" and p.get("worker")}
    assert {i: p["state"] for i, p in worker_final.items()} == {"c0": "done", "c1": "cancelled", "c2": "done"}
    assert worker_final["c1"]["attempts"] == [] and worker_final["c1"]["result"]["reason"] == "stopped"
    assert [[a["tier"] for a in worker_final[i]["attempts"]] for i in ("c0", "c2")] == \
        [["LOCAL_FAST", "LOCAL_QUALITY"]] * 2
    assert [[t in body for t in ("first text", "cancelled text", "third text")] for body in CountingEcho.prompts] \
        == [[True, False, False], [False, False, True]]                     # c1 never escalated
