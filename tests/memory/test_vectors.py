"""Vector-index backends behind one interface: the embedded HNSW file (faiss)
and Qdrant through qdrant-client's local mode (the same API as a server).
A few hundred clustered vectors; exact neighbours by numpy are the reference."""

from __future__ import annotations

import numpy as np
import pytest

from swarmd.memory.vectors import VectorIndexError, index_path, open_index
from swarmd.memory.vectors.hnsw import HnswIndex
from swarmd.memory.vectors.qdrant import QdrantIndex

DIM = 32


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, DIM))
    v = centres[rng.integers(0, 20, n)] + 0.5 * rng.standard_normal((n, DIM))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(params=["hnsw", "qdrant"])
def make_index(request, tmp_path):
    opened = []

    def make(name: str = "classify-abc", dim: int = DIM):
        if request.param == "hnsw":
            index = HnswIndex(name, dim, tmp_path / f"{name}.hnsw")
        else:
            from qdrant_client import QdrantClient
            index = QdrantIndex(name, dim, QdrantClient(":memory:"))
        opened.append(index)
        return index

    yield make
    for index in opened:
        index.close()


def test_search_finds_the_exact_nearest_neighbours(make_index):
    index = make_index()
    x = _vectors(300)
    ids = list(range(1000, 1300))
    index.upsert(ids, x)
    assert len(index) == 300
    queries = _vectors(20, seed=1)
    hits = 0
    for q in queries:
        exact = [ids[i] for i in np.argsort(-(x @ q))[:5]]
        found = index.search(q, 5)
        assert [n.score for n in found] == sorted((n.score for n in found), reverse=True)
        assert found[0].score == pytest.approx(float(x[ids.index(found[0].id)] @ q), abs=2e-3)
        hits += len({n.id for n in found} & set(exact))
    assert hits / (20 * 5) >= 0.95


def test_upsert_replaces_delete_removes_missing_reports(make_index):
    index = make_index()
    x = _vectors(50)
    index.upsert(list(range(50)), x)
    index.upsert([7], x[42:43])                       # id 7 now holds 42's vector
    assert len(index) == 50
    top = index.search(x[42], 2)
    assert {n.id for n in top} == {7, 42} and min(n.score for n in top) > 0.999
    index.delete([7, 9999])
    assert len(index) == 49 and 7 not in {n.id for n in index.search(x[42], 5)}
    assert index.missing([0, 7, 49, 50]) == [7, 50]


def test_wrong_shapes_are_refused(make_index):
    index = make_index()
    with pytest.raises(VectorIndexError, match=f"expected 2 × {DIM}"):
        index.upsert([1, 2], np.zeros((2, DIM + 1), np.float32))
    with pytest.raises(VectorIndexError, match="expected 1"):
        index.search(np.zeros(DIM + 1, np.float32), 3)
    with pytest.raises(VectorIndexError, match="name"):
        make_index(name="no spaces/or slashes")


def test_hnsw_file_persists_and_reloads_in_another_reader(tmp_path, monkeypatch):
    import swarmd.memory.vectors.hnsw as hnsw
    monkeypatch.setattr(hnsw, "RELOAD_CHECK_S", 0.0)
    path = index_path(tmp_path, "classify-abc", "model-x")
    x = _vectors(200)
    writer = HnswIndex("classify-abc", DIM, path)
    writer.upsert(list(range(100)), x[:100])
    assert not path.exists()                          # nothing written before flush
    writer.flush()
    reader = HnswIndex("classify-abc", DIM, path)
    assert len(reader) == 100 and reader.search(x[5], 1)[0].id == 5
    writer.upsert(list(range(100, 200)), x[100:])
    writer.flush()
    assert reader.search(x[150], 1)[0].id == 150       # the reader picked up the new file
    assert len(reader) == 200
    with pytest.raises(VectorIndexError, match="holds 32-dimension vectors, not 64"):
        HnswIndex("classify-abc", 64, path)
    path.write_bytes(b"not an index")
    with pytest.raises(VectorIndexError, match="cannot be read"):
        HnswIndex("classify-abc", DIM, path)


def test_open_index_chooses_the_backend(tmp_path):
    index = open_index("classify-abc", DIM, data_dir=tmp_path, model_id="m")
    assert isinstance(index, HnswIndex) and index.path == tmp_path / "vectors" / "m" / "classify-abc.hnsw"
    with pytest.raises(VectorIndexError, match="swarmd_m.classify-abc"):
        open_index("classify-abc", DIM, data_dir=tmp_path, model_id="m", qdrant_url="http://127.0.0.1:9")


def test_qdrant_collection_of_other_dimensions_is_refused():
    from qdrant_client import QdrantClient
    client = QdrantClient(":memory:")
    QdrantIndex("c", DIM, client)
    with pytest.raises(VectorIndexError, match=f"holds {DIM}-dimension vectors, not 8"):
        QdrantIndex("c", 8, client)
