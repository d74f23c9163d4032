"""Benchmark: retrieval of verified examples (issue 10, item 5) — search speed, retrieval
quality, and what retrieved examples in the local tier's prompt do to Gemma.

    python bench/retrieval.py [--n 100000] [--queries 1000] [--ann] [--gemma] [--json]

Tables (every number measured in this run):

1. **search over N records** (default 100,000): the query's embedding
   (all-MiniLM-L6-v2 int8, one thread, one commit message at a time) timed
   apart from the search; vector search in swarmd's embedded index
   (:class:`swarmd.memory.vectors.hnsw.HnswIndex`, faiss HNSW, one thread),
   BM25 over N verified records (:mod:`swarmd.memory.bm25`, bm25s; its
   index build timed apart), and hybrid (both + RRF).
   p50/p99 in milliseconds, build time, and recall@10 of the HNSW search
   against an exact numpy scan (which is also timed: the baseline).  The
   N vectors are synthetic but shaped like real ones: each is a normalised
   mix of two real commit-message embeddings plus noise
   (:func:`synthetic_vectors`); the N texts are commit-message words drawn
   by their frequency (:func:`synthetic_texts`).  Then the quality at that
   scale (:func:`quality_at_scale`): the 600 commitizen messages among the
   N synthetic records, P@4 and the share of real messages in the top 4.
2. **retrieval quality** on the 600 commitizen messages
   (examples/commits-commitizen.jsonl), leave-one-out (the pool is the 599
   others; same-text records are excluded as the answer cache's business):
   P@1 and P@4 = share of retrieved examples with the query's label, and
   vote@8 = accuracy of a rank-weighted vote of the top 8 labels, per mode
   (vector, BM25, hybrid); the majority label's share is the chance baseline.
3. ``--ann``: HNSW libraries compared on the same N × 384 vectors, each in
   its own process, one thread, M 16, ef_construction 128, ef_search 64:
   build seconds, query p50/p99, recall@10 (faiss-cpu, usearch, hnswlib,
   those installed).
4. ``--gemma``: the embedded Gemma 3 270M on a held-out shuffled split
   (seed 0: 150 test messages, the other 450 verified examples), with the
   fixed few-shot prompt against the same prompt plus the ``--k`` retrieved
   examples (``--mode``) after the cached prefix.  For each prompt form a
   calibration is fitted on the 450 pool messages scored in that form
   (for the retrieved form, each pool message retrieves from the 449
   others) with :func:`swarmd.router.calibration.fit_label_calibration`, and
   applied to the test messages: raw accuracy (model argmax), calibrated
   accuracy, AUROC, accuracy and coverage of answers accepted at confidence
   ≥ 0.7, and items/s of the test pass (retrieval included for the
   retrieved form; median of 25-item chunks) with their ratio.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
# bench/ holds queue.py, which would shadow the standard library's queue module (bm25s imports it)
sys.path[:] = [str(ROOT / "src")] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

DATA = ROOT / "examples" / "commits-commitizen.jsonl"
DIM = 384


def load_items() -> list[dict]:
    return [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, q))


def timed(fn, args) -> tuple[list, dict]:
    """``fn(a)`` for each ``a``: results and wall/CPU (this thread) p50/p99 in ms.
    CPU time is what the search costs; wall time adds waiting for a core
    (this machine's 2 cores are shared: see the load average printed)."""
    out, wall, cpu = [], [], []
    for a in args:
        w, c = time.perf_counter(), time.thread_time()
        out.append(fn(a))
        cpu.append(time.thread_time() - c)
        wall.append(time.perf_counter() - w)
    return out, {"p50": pct(wall, 50), "p99": pct(wall, 99), "cpu_p50": pct(cpu, 50), "cpu_p99": pct(cpu, 99)}


def synthetic_vectors(base: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` unit vectors, each ``normalise(e_i + 0.5 e_j + 0.5 g)`` with e_i, e_j
    random rows of ``base`` (real embeddings) and g a Gaussian vector of norm ~1."""
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, len(base), n), rng.integers(0, len(base), n)
    g = rng.standard_normal((n, base.shape[1])).astype(np.float32) / np.sqrt(base.shape[1])
    x = base[i] + 0.5 * base[j] + 0.5 * g
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def synthetic_texts(items: list[dict], n: int, seed: int) -> list[str]:
    """``n`` texts of 4-14 words drawn by their frequency in the commit messages."""
    words = Counter(w for it in items for w in it["text"].split())
    vocab, weights = list(words), np.array(list(words.values()), dtype=float)
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, 15, n)
    drawn = rng.choice(len(vocab), size=int(lengths.sum()), p=weights / weights.sum())
    out, at = [], 0
    for length in lengths:
        out.append(" ".join(vocab[k] for k in drawn[at:at + length]))
        at += length
    return out


# --------------------------------------------------------------------------- 1. search speed

def bench_search(items, embedder, n: int, n_queries: int, workdir: Path) -> dict:
    from swarmd.memory.records import Memory, Verified
    from swarmd.memory.retrieval import Retriever
    from swarmd.memory.vectors.hnsw import HnswIndex

    texts = [it["text"] for it in items]
    base = embedder.embed(texts)
    out = {"embed": timed(embedder.embed_one, texts[:200])[1]}

    vectors = synthetic_vectors(base, n, seed=1)
    queries = synthetic_vectors(base, n_queries, seed=2)
    index = HnswIndex("bench", DIM, workdir / "bench.hnsw")
    start = time.perf_counter()
    for s in range(0, n, 10_000):
        index.upsert(list(range(1, n + 1))[s:s + 10_000], vectors[s:s + 10_000])
    index.flush()
    out["build_s"] = time.perf_counter() - start
    index = HnswIndex("bench", DIM, workdir / "bench.hnsw")         # as a worker opens it
    found, out["vector"] = timed(lambda q: [h.id - 1 for h in index.search(q, 10)], queries)
    exact, out["exact"] = timed(lambda q: np.argpartition(-(vectors @ q), 10)[:10].tolist(), queries)
    out["recall10"] = float(np.mean([len(set(e) & set(f)) / 10 for e, f in zip(exact, found)]))

    labels = tuple(sorted({it["label"] for it in items}))
    memory = Memory(workdir / "memory.db")
    synth = synthetic_texts(items, n, seed=3)
    start = time.perf_counter()
    for s in range(0, n, 10_000):
        memory.add_many([Verified("classify", labels, t, labels[k % len(labels)], "teacher",
                                  objective_id=f"s{s + k}") for k, t in enumerate(synth[s:s + 10_000])])
    out["insert_s"] = time.perf_counter() - start
    retriever = Retriever(memory, embedder, lambda name, dim: index)
    start = time.perf_counter()                    # the in-memory BM25 index, built on the first search
    retriever.bm25("classify", labels).search("warm up", 1)
    out["bm25_build_s"] = time.perf_counter() - start
    qtexts = [texts[k % len(texts)] for k in range(n_queries)]
    for mode in ("bm25", "hybrid"):
        out[mode] = timed(lambda qt: retriever.search("classify", labels, qt[1], k=4, mode=mode, vector=qt[0]),
                          list(zip(queries, qtexts)))[1]
    out["at_scale"] = quality_at_scale(items, base, memory, index, retriever, labels, n)
    memory.close()
    return out


def quality_at_scale(items, base, memory, index, retriever, labels, n: int) -> dict:
    """The 600 commitizen messages added to the N synthetic records (ids N+1..,
    real embeddings in the HNSW index), each queried leave-one-out: P@4 (same
    label; a synthetic record's label is arbitrary, so finding one costs
    precision) and real@4 (share of the top 4 that are real messages), per mode.
    What term pruning or an approximate index loses shows here, not in the
    600-record pool of :func:`bench_quality`."""
    from swarmd.memory.records import Verified

    memory.add_many([Verified("classify", labels, it["text"], it["label"], "human", objective_id=it["id"])
                     for it in items])
    index.upsert(list(range(n + 1, n + 1 + len(items))), base)
    out = {}
    for mode in ("vector", "bm25", "hybrid"):
        p4, found, _times = leave_one_out(retriever, labels, items, base, mode, k=4)
        real4 = 0.0
        for top in found:
            real4 += sum(e.id > n for e in top) / 4
        out[mode] = {"p4": p4, "real4": real4 / len(items)}
    return out


def leave_one_out(retriever, labels, items, vectors, mode: str, k: int) -> tuple[float, list[list], list[float]]:
    """Query each of ``items`` (commitizen messages, already among the
    retriever's ``classify`` records) by its text and its row of ``vectors``
    (its embedding), top ``k`` (≥ 4) in ``mode``: leave-one-out, because the
    :class:`swarmd.memory.retrieval.Retriever` excludes records of the
    query's own text.  Returns P@4 (mean share of the top 4 with the query's
    label, 0..1), the records found per item (in ``items``' order) and each
    search's wall time in seconds."""
    p4, found, times = 0.0, [], []
    for it, v in zip(items, vectors):
        start = time.perf_counter()
        top = retriever.search("classify", labels, it["text"], k=k, mode=mode, vector=v)
        times.append(time.perf_counter() - start)
        found.append(top)
        p4 += sum(e.answer == it["label"] for e in top[:4]) / 4
    return p4 / len(items), found, times


# --------------------------------------------------------------------------- 2. retrieval quality

def bench_quality(items, embedder, workdir: Path, ks=(1, 4, 8)) -> dict:
    from swarmd.memory.embed import MODEL_ID
    from swarmd.memory.records import Memory, Verified
    from swarmd.memory.retrieval import Retriever
    from swarmd.memory.vectors import open_index

    labels = tuple(sorted({it["label"] for it in items}))
    memory = Memory(workdir / "quality.db")
    memory.add_many([Verified("classify", labels, it["text"], it["label"], "human", objective_id=it["id"])
                     for it in items])
    retriever = Retriever(memory, embedder, lambda name, dim: open_index(name, dim, data_dir=workdir,
                                                                         model_id=MODEL_ID))
    retriever.sync("classify", labels)
    vectors = embedder.embed([it["text"] for it in items])
    out = {"n": len(items), "chance": Counter(it["label"] for it in items).most_common(1)[0][1] / len(items)}
    for mode in ("vector", "bm25", "hybrid"):
        p4, found, times = leave_one_out(retriever, labels, items, vectors, mode, k=8)
        p1 = vote = 0.0
        for it, top in zip(items, found):
            answers = [e.answer for e in top]
            p1 += answers[:1] == [it["label"]]
            weights: Counter = Counter()
            for rank, a in enumerate(answers, start=1):
                weights[a] += 1.0 / rank
            vote += bool(weights) and weights.most_common(1)[0][0] == it["label"]
        n = len(items)
        out[mode] = {"p1": p1 / n, "p4": p4, "vote8": vote / n, "p50_ms": pct(times, 50), "p99_ms": pct(times, 99)}
    retriever.close()
    memory.close()
    return out


# --------------------------------------------------------------------------- 3. HNSW libraries

def ann_worker(lib: str, path: str, n_queries: int) -> dict:
    """Build and query one library's HNSW on the vectors in ``path`` (run in its own process)."""
    data = np.load(path)
    x, q = data["x"], data["q"]
    truth = np.argsort(-(q @ x.T), axis=1)[:, :10]
    start = time.perf_counter()
    if lib == "faiss":
        import faiss
        faiss.omp_set_num_threads(1)
        index = faiss.IndexHNSWFlat(DIM, 16, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 128
        index.add(x)
        index.hnsw.efSearch = 64
        search = lambda v: index.search(v[None], 10)[1][0]          # noqa: E731
    elif lib == "usearch":
        from usearch.index import Index
        index = Index(ndim=DIM, metric="cos", dtype="f32", connectivity=16, expansion_add=128, expansion_search=64)
        index.add(np.arange(len(x)), x, threads=1)
        search = lambda v: index.search(v, 10, threads=1).keys      # noqa: E731
    elif lib == "hnswlib":
        import hnswlib
        index = hnswlib.Index(space="ip", dim=DIM)
        index.init_index(max_elements=len(x), ef_construction=128, M=16)
        index.set_num_threads(1)
        index.add_items(x, np.arange(len(x)))
        index.set_ef(64)
        search = lambda v: index.knn_query(v, 10)[0][0]             # noqa: E731
    else:
        raise ValueError(lib)
    build = time.perf_counter() - start
    times, recall = [], []
    for v, t in zip(q[:n_queries], truth):
        s = time.perf_counter()
        got = search(v)
        times.append(time.perf_counter() - s)
        recall.append(len(set(np.asarray(got).tolist()) & set(t.tolist())) / 10)
    return {"lib": lib, "build_s": build, "p50_ms": pct(times, 50), "p99_ms": pct(times, 99),
            "recall10": float(np.mean(recall))}


def bench_ann(items, embedder, n: int, n_queries: int, workdir: Path) -> list[dict]:
    base = embedder.embed([it["text"] for it in items])
    path = workdir / "ann.npz"
    np.savez(path, x=synthetic_vectors(base, n, seed=1), q=synthetic_vectors(base, n_queries, seed=2))
    rows = []
    for lib in ("faiss", "usearch", "hnswlib"):
        proc = subprocess.run([sys.executable, __file__, "--ann-worker", lib, str(path), str(n_queries)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            rows.append({"lib": lib, "error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]})
        else:
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return rows


# --------------------------------------------------------------------------- 4. Gemma with retrieved examples

def bench_gemma(items, embedder, workdir: Path, k: int, mode: str, n_test: int, seed: int,
                scores_path: Path | None = None, batch_size: int = 8) -> dict:
    import dataclasses
    import hashlib

    from swarmd.config import LabelCalibration, load_config
    from swarmd.memory.embed import MODEL_ID
    from swarmd.memory.records import Memory, Verified
    from swarmd.memory.retrieval import Retriever
    from swarmd.memory.vectors import open_index
    from swarmd.router.calibration import fit_label_calibration, label_decision
    from swarmd.router.prompts import build_prompt
    from swarmd.router.providers.llama_cpp import LlamaCppProvider
    # bench/classify.py by its path: bench/ on sys.path would let bench/queue_throughput.py shadow the stdlib's queue
    spec = importlib.util.spec_from_file_location("bench_classify", ROOT / "bench" / "classify.py")
    classify = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(classify)
    auroc = classify.auroc

    config = load_config(ROOT / "src" / "swarmd" / "llm_config.yaml")
    action = config.actions["classify"]
    model = config.tiers["LOCAL_FAST"][0]
    labels = tuple(sorted({it["label"] for it in items}))
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    test, pool = [items[i] for i in order[:n_test]], [items[i] for i in order[n_test:]]
    memory = Memory(workdir / "gemma.db")
    memory.add_many([Verified("classify", labels, it["text"], it["label"], "human", objective_id=it["id"])
                     for it in pool])
    retriever = Retriever(memory, embedder, lambda name, dim: open_index(name, dim, data_dir=workdir / "g",
                                                                         model_id=MODEL_ID))
    retriever.sync("classify", labels)
    provider = None
    cache = json.loads(scores_path.read_text()) if scores_path and scores_path.exists() else {}

    def score(batch, retrieved: bool):
        """Label scores of ``batch`` in one prompt form, ``batch_size`` prompts
        decoded together (:meth:`LlamaCppProvider.classify_batch`, the shared
        prefix once); a prompt scored by an earlier run (``scores_path``,
        keyed by a hash of the whole prompt) is not scored again and its time
        is not counted.  Times per prompt: its retrieval plus its share of its
        batch's decode."""
        nonlocal provider
        prompts, search_s = [], []
        for it in batch:
            start = time.perf_counter()
            examples = ()
            if retrieved:
                examples = tuple((e.input, e.answer) for e in retriever.search("classify", labels, it["text"],
                                                                                k=k, mode=mode))
            prompts.append(dataclasses.replace(build_prompt(action, it["text"], labels, examples), calibration=()))
            search_s.append(time.perf_counter() - start)
        keys = [hashlib.sha256(f"{model.model}\0{p.text}".encode()).hexdigest() for p in prompts]
        todo = [i for i, key in enumerate(keys) if key not in cache]
        times = []
        for lo in range(0, len(todo), batch_size):
            chunk = todo[lo:lo + batch_size]
            if provider is None:
                provider = LlamaCppProvider(model)
                provider.classify(build_prompt(action, "warm-up", labels))
            start = time.perf_counter()
            got = provider.classify_batch([prompts[i] for i in chunk])
            took = (time.perf_counter() - start) / len(chunk)
            for i, c in zip(chunk, got):
                if isinstance(c, Exception):
                    raise c
                cache[keys[i]] = c.extra["label_logprobs"]
                times.append(took + search_s[i])
        if scores_path and todo:
            scores_path.parent.mkdir(parents=True, exist_ok=True)
            scores_path.write_text(json.dumps(cache))
        return [cache[key] for key in keys], times

    out = {"n_test": len(test), "n_pool": len(pool), "k": k, "mode": mode, "model": model.model}
    for form, retrieved in (("fixed", False), ("retrieved", True)):
        fit_rows, _t = score(pool, retrieved)
        fit = fit_label_calibration([[r[lab] for lab in labels] for r in fit_rows],
                                    [labels.index(it["label"]) for it in pool], labels)
        cal = LabelCalibration(model=model.model, **fit)
        rows, times = score(test, retrieved)
        raw = [max(r, key=r.get) for r in rows]
        decided = [label_decision(r, cal) for r in rows]
        correct = [d[0] == it["label"] for d, it in zip(decided, test)]
        conf = [d[2] for d in decided]
        accepted = [c >= 0.7 for c in conf]
        n_acc = sum(accepted)
        chunks = [len(times[s:s + 25]) / sum(times[s:s + 25]) for s in range(0, len(times), 25)] or [float("nan")]
        out[form] = {
            "raw_accuracy": sum(a == it["label"] for a, it in zip(raw, test)) / len(test),
            "accuracy": sum(correct) / len(test), "auroc": auroc(conf, correct),
            "accepted_accuracy": sum(c for c, a in zip(correct, accepted) if a) / n_acc if n_acc else float("nan"),
            "coverage": n_acc / len(test), "items_per_s": statistics.median(chunks),
            "overall_items_per_s": len(times) / sum(times) if times else float("nan"),
            "batch": batch_size,
            "scored_now": len(times), "calibration": {"model": model.model, "prompt": form, **fit}}
        if form == "fixed":       # the shipped calibration (fitted on messages 0-299 in the fixed form)
            fixed_cal = next(c for c in action.label_calibration if c.applies(model.model, labels, "fixed"))
            shipped = [label_decision(r, fixed_cal) for r in rows]
            out["fixed"]["shipped_accuracy"] = sum(d[0] == it["label"] for d, it in zip(shipped, test)) / len(test)
    retriever.close()
    memory.close()
    return out


# --------------------------------------------------------------------------- output

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="records searched (default 100,000)")
    parser.add_argument("--queries", type=int, default=1000, help="timed queries (default 1000)")
    parser.add_argument("--ann", action="store_true", help="also compare HNSW libraries (minutes)")
    parser.add_argument("--gemma", action="store_true", help="also run Gemma with and without retrieved examples")
    parser.add_argument("--only-gemma", action="store_true", help="run the Gemma comparison only")
    parser.add_argument("--k", type=int, default=4, help="retrieved examples in the prompt (default 4)")
    parser.add_argument("--mode", default="hybrid", choices=("vector", "bm25", "hybrid"))
    parser.add_argument("--n-test", type=int, default=150, help="held-out test messages for --gemma (default 150)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="also print the numbers as JSON")
    parser.add_argument("--batch", type=int, default=8,
                        help="prompts Gemma decodes together in --gemma (classify_batch; default 8)")
    parser.add_argument("--scores", default=str(ROOT / "data" / "bench" / "retrieval-gemma-scores.json"),
                        help="file keeping Gemma's label scores per prompt between runs ('' = none)")
    parser.add_argument("--ann-worker", nargs=3, metavar=("LIB", "NPZ", "QUERIES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ann_worker:
        lib, path, nq = args.ann_worker
        print(json.dumps(ann_worker(lib, path, int(nq))))
        return 0
    from loguru import logger
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    from swarmd.memory.embed import Embedder
    console = Console()
    items = load_items()
    embedder = Embedder()
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.only_gemma:
            s = results["search"] = bench_search(items, embedder, args.n, args.queries, work)
            t = Table(title=f"search over {args.n:,} records ({args.queries} queries, one thread; ms; "
                            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
            for col in ("what", "wall p50", "wall p99", "CPU p50", "CPU p99", "note"):
                t.add_column(col)

            def row(name, r, note):
                t.add_row(name, f"{r['p50']:.3f}", f"{r['p99']:.3f}", f"{r['cpu_p50']:.3f}", f"{r['cpu_p99']:.3f}", note)
            row("query embedding (MiniLM int8)", s["embed"], "200 commit messages, one at a time")
            row("vector: HNSW (faiss), top 10", s["vector"], f"recall@10 {s['recall10']:.3f}; built in {s['build_s']:.0f} s")
            row("  baseline: exact numpy scan", s["exact"],
                f"HNSW/scan p99: wall {s['vector']['p99'] / s['exact']['p99']:.3f}, "
                f"CPU {s['vector']['cpu_p99'] / s['exact']['cpu_p99']:.3f}")
            row("BM25, top 4", s["bm25"],
                f"{args.n:,} rows inserted in {s['insert_s']:.0f} s; index built in {s['bm25_build_s']:.1f} s")
            row("hybrid (HNSW + BM25, RRF), top 4", s["hybrid"], "embedding not included")
            console.print(t)
            a = s["at_scale"]
            t = Table(title=f"same-label retrieval at scale: the {len(items)} commitizen messages among "
                            f"{args.n:,} synthetic records, leave-one-out, top 4")
            for col in ("mode", "P@4", "real@4 (share of real messages)"):
                t.add_column(col)
            for mode in ("vector", "bm25", "hybrid"):
                t.add_row(mode, f"{a[mode]['p4']:.3f}", f"{a[mode]['real4']:.3f}")
            console.print(t)
            q = results["quality"] = bench_quality(items, embedder, work)
            t = Table(title=f"same-label retrieval, commitizen leave-one-out ({q['n']} queries, pool 599)")
            for col in ("mode", "P@1", "P@4", "vote@8 acc.", "p50 ms", "p99 ms"):
                t.add_column(col)
            for mode in ("vector", "bm25", "hybrid"):
                r = q[mode]
                t.add_row(mode, f"{r['p1']:.3f}", f"{r['p4']:.3f}", f"{r['vote8']:.3f}",
                          f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}")
            t.add_row("chance (majority label)", f"{q['chance']:.3f}", f"{q['chance']:.3f}", f"{q['chance']:.3f}", "", "")
            console.print(t)
        if args.ann:
            rows = results["ann"] = bench_ann(items, embedder, args.n, args.queries, work)
            t = Table(title=f"HNSW libraries, {args.n:,} × {DIM}, one thread, M 16, efC 128, efS 64")
            for col in ("library", "build s", "p50 ms", "p99 ms", "recall@10"):
                t.add_column(col)
            for r in rows:
                if "error" in r:
                    t.add_row(r["lib"], "failed: " + r["error"][:60], "", "", "")
                else:
                    t.add_row(r["lib"], f"{r['build_s']:.1f}", f"{r['p50_ms']:.3f}", f"{r['p99_ms']:.3f}",
                              f"{r['recall10']:.3f}")
            console.print(t)
        if args.gemma or args.only_gemma:
            g = results["gemma"] = bench_gemma(items, embedder, work, args.k, args.mode, args.n_test, args.seed,
                                               Path(args.scores) if args.scores else None, args.batch)
            t = Table(title=f"{g['model']}: fixed prompt vs + {g['k']} retrieved examples ({g['mode']}), "
                            f"{g['n_test']} held-out messages, pool {g['n_pool']}, calibration fitted per form on the pool")
            for col in ("prompt", "raw acc.", "calibrated acc.", "AUROC", "acc. at conf ≥ 0.7", "coverage",
                        "items/s (median)", "batch"):
                t.add_column(col)
            for form in ("fixed", "retrieved"):
                r = g[form]
                t.add_row(form, f"{r['raw_accuracy']:.3f}", f"{r['accuracy']:.3f}", f"{r['auroc']:.3f}",
                          f"{r['accepted_accuracy']:.3f}", f"{r['coverage']:.3f}",
                          f"{r['items_per_s']:.2f} ({r['overall_items_per_s']:.2f} overall)",
                          str(r["batch"]))
            console.print(t)
            console.print(f"shipped calibration on the fixed prompt: accuracy {g['fixed']['shipped_accuracy']:.3f}; "
                          f"items/s retrieved / fixed: {g['retrieved']['items_per_s'] / g['fixed']['items_per_s']:.2f}× "
                          f"(prompts scored in this run: {g['fixed']['scored_now']} fixed, "
                          f"{g['retrieved']['scored_now']} retrieved; the others read from {args.scores})")
            cal = {k: (round(v, 4) if isinstance(v, float) else {l: round(x, 4) for l, x in v.items()}
                       if isinstance(v, dict) else v) for k, v in g["retrieved"]["calibration"].items()}
            console.print("label_calibration entry for the retrieved form (fitted on the pool):")
            print(yaml.safe_dump([cal], sort_keys=False, default_flow_style=None, width=200))
    if args.json:
        print(json.dumps(results, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
