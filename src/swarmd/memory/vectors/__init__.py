"""Vector search behind one small interface (:class:`~.base.VectorIndex`), one backend a module:

* :mod:`.hnsw` — :class:`~.hnsw.HnswIndex`, an embedded HNSW index (faiss)
  in a file under the data directory: the default;
* :mod:`.qdrant` — :class:`~.qdrant.QdrantIndex`, a Qdrant collection
  (``memory.qdrant_url``) for several hosts sharing one memory.

:func:`open_index` chooses from the config.  Backends import their library
when constructed, so importing this package needs only numpy.
"""

from __future__ import annotations

from pathlib import Path

from swarmd.memory.vectors.base import Neighbour, VectorIndex, VectorIndexError

__all__ = ["Neighbour", "VectorIndex", "VectorIndexError", "index_path", "open_index"]


def index_path(data_dir: str | Path, name: str, model_id: str) -> Path:
    """Where the embedded index of collection ``name`` lives:
    ``<data_dir>/vectors/<model_id>/<name>.hnsw`` (vectors of another
    embedding model never share a file)."""
    return Path(data_dir) / "vectors" / model_id / f"{name}.hnsw"


def open_index(name: str, dim: int, *, data_dir: str | Path, model_id: str,
               qdrant_url: str | None = None) -> VectorIndex:
    """The index of collection ``name``: Qdrant at ``qdrant_url`` when given
    (collection ``swarmd_<model_id>.<name>``),
    else the embedded HNSW file :func:`index_path`.  Raises
    :class:`VectorIndexError` (unreadable file, unreachable Qdrant, other dimensions)."""
    if qdrant_url:
        from qdrant_client import QdrantClient  # lazy: optional [qdrant] extra
        from swarmd.memory.vectors.qdrant import QdrantIndex  # lazy: pulls qdrant-client
        return QdrantIndex(f"{model_id}.{name}", dim, QdrantClient(url=qdrant_url))
    from swarmd.memory.vectors.hnsw import HnswIndex  # lazy: pulls faiss
    return HnswIndex(name, dim, index_path(data_dir, name, model_id))
