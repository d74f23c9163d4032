"""Few-shot prompt building from an action's template in the config.

A prompt is ``instruction`` + one ``item`` per example (with its answer) + the
``item`` for the input, left open for the answer.  The instruction and the
examples form the :attr:`Prompt.prefix`, identical across every call with the
same action and label set, so providers can reuse its KV state.
"""

from __future__ import annotations

from functools import lru_cache

from swarmd.config import ActionConfig
from swarmd.router.providers.base import Prompt

#: Default cut of an input in a prompt (characters), the default of
#: ``ActionConfig.input_max_chars``: one item fits every tier's context window.
MAX_INPUT_CHARS = 4000


def _clean(text: str, limit: int = MAX_INPUT_CHARS) -> str:
    """One-line form of an input, cut at ``limit`` characters: folding
    whitespace keeps items separated by their blank lines."""
    return " ".join(text.split())[:limit]


def _prefix(action: ActionConfig, labels: tuple[str, ...]) -> str:
    examples = tuple((ex.input, ex.answer) for ex in action.examples)
    return _render_prefix(action.instruction, action.item, action.output, examples, labels,
                          action.input_max_chars)


@lru_cache(maxsize=256)
def _render_prefix(instruction: str, item: str, output: str,
                   examples: tuple[tuple[str, str], ...], labels: tuple[str, ...], limit: int) -> str:
    shown = ", ".join(labels)
    parts = [instruction.format(labels=shown), ""]
    for text, answer in examples:
        if output == "label" and labels and answer not in labels:
            continue
        parts.append(item.format(input=_clean(text, limit), labels=shown) + " " + answer)
        parts.append("")
    return "\n".join(parts) + "\n"     # a blank line before the input, as between examples


def build_prompt(action: ActionConfig, text: str, labels: tuple[str, ...] = (),
                 examples: tuple[tuple[str, str], ...] = ()) -> Prompt:
    """The :class:`Prompt` for one input of ``action``.

    ``labels`` is the label set for ``label``/``labels`` outputs (``yes_no``
    uses ``("yes", "no")``).  The body ends right before the answer; the
    answer is expected after one space.  ``examples``: retrieved (input,
    answer) pairs (:mod:`swarmd.memory.retrieval`), rendered like the fixed
    examples but in the body, after the cached prefix, so the prefix's KV
    state is still reused; label examples whose answer is not in ``labels``
    are left out.  ``Prompt.form`` is ``retrieved`` when any example was
    rendered (only calibrations fitted on that form apply), else ``fixed``.
    """
    if action.output == "yes_no":
        labels = ("yes", "no")
    shown = ", ".join(labels)
    body = "".join(action.item.format(input=_clean(ex, action.input_max_chars), labels=shown) + " " + answer + "\n\n"
                   for ex, answer in examples
                   if not (action.output in ("label", "yes_no") and labels and answer not in labels))
    form = "retrieved" if body else "fixed"
    body += action.item.format(input=_clean(text, action.input_max_chars), labels=shown)
    return Prompt(prefix=_prefix(action, tuple(labels)), body=body, labels=tuple(labels),
                  output=action.output, stop=("\n",) if action.output in ("label", "labels", "yes_no") else ("\n\n",),
                  calibration=tuple(action.label_calibration), form=form)
