"""Model backends behind one interface (:class:`~swarmd.router.providers.base.Provider`).

:func:`make_provider` builds the provider a tier entry names; backends are
imported lazily so that, e.g., a machine without llama-cpp-python can still
route to Ollama and Anthropic.
"""

from __future__ import annotations

from swarmd.config import ModelConfig
from swarmd.router.providers.base import (Completion, Prompt, Provider, ProviderError,
                                          ProviderUnavailable)

__all__ = ["Completion", "Prompt", "Provider", "ProviderError", "ProviderUnavailable", "make_provider"]


def make_provider(model: ModelConfig, cooldown_s: float = 60.0) -> Provider:
    """A provider instance for one tier entry.

    Raises :class:`ProviderUnavailable` when the backend's package is missing.
    """
    try:
        if model.provider == "llama_cpp":
            from swarmd.router.providers.llama_cpp import LlamaCppProvider  # lazy: llama_cpp is an optional extra
            return LlamaCppProvider(model)
        if model.provider == "ollama":
            from swarmd.router.providers.ollama import OllamaProvider  # lazy: its client only when a tier uses it
            return OllamaProvider(model, cooldown_s=cooldown_s)
        if model.provider == "anthropic":
            from swarmd.router.providers.anthropic import AnthropicProvider  # lazy: its client only when used
            return AnthropicProvider(model)
        if model.provider == "echo":
            from swarmd.router.providers.echo import EchoProvider  # lazy like the other providers
            return EchoProvider(model)
    except ImportError as exc:
        raise ProviderUnavailable(f"{model.provider} backend not installed: {exc}") from None
    raise ProviderUnavailable(f"unknown provider {model.provider!r}")
