"""An instant provider for measuring swarmd's own overhead (``provider: echo``).

It does no inference: label outputs get the first label with probability 1,
other outputs get the input's body back.  It answers label batches too
(:meth:`EchoProvider.classify_batch`), so the paths that batch label
objectives (:meth:`swarmd.router.Router.route_many`, the workers'
:mod:`swarmd.workers.batching`) run without a model.  Used by ``bench/queue_throughput.py`` and tests
that measure or exercise the queue path rather than a model.
"""

from __future__ import annotations

from swarmd.router.providers.base import Completion, Prompt, Provider


class EchoProvider(Provider):
    """Answers at once; token counts are whitespace-separated words."""

    kind = "echo"

    def complete(self, prompt: Prompt, max_tokens: int) -> Completion:
        text = "{}" if prompt.output == "json" else prompt.body
        return Completion(text=text, tokens_in=len(prompt.text.split()), tokens_out=len(text.split()),
                          latency_ms=0.0, token_logprobs=[0.0])

    def classify(self, prompt: Prompt) -> Completion:
        first = prompt.labels[0] if prompt.labels else ""
        return Completion(text=first, tokens_in=len(prompt.text.split()), tokens_out=1, latency_ms=0.0,
                          label_probs={label: float(label == first) for label in prompt.labels})

    def classify_batch(self, prompts: list[Prompt]) -> list[Completion]:
        """:meth:`classify` of each prompt, in order (the batch interface of
        :class:`swarmd.router.providers.llama_cpp.LlamaCppProvider`)."""
        return [self.classify(p) for p in prompts]
