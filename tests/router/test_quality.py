"""The quality gate's format checks and confidence rule."""

import math

from swarmd.router.providers.base import Completion, Prompt
from swarmd.router.quality import assess, parse_label

LABEL = Prompt("p", "b", labels=("feat", "fix"), output="label")
REFUSALS = ("I can't", "as an AI")


def c(text, logprobs=None, label_probs=None):
    return Completion(text=text, tokens_in=1, tokens_out=1, latency_ms=1, token_logprobs=logprobs,
                      label_probs=label_probs)


def test_label_distribution_gives_confidence():
    v = assess(LABEL, c("feat", label_probs={"feat": 0.8, "fix": 0.2}))
    assert (v.answer, v.confidence, v.problem) == ("feat", 0.8, None)


def test_label_outside_set_is_zero():
    v = assess(LABEL, c("docs: blah", logprobs=[0.0]))
    assert v.confidence == 0 and "not in set" in v.problem


def test_generated_label_parsed_with_punctuation_and_case():
    assert parse_label("Fix.", ("feat", "fix")) == "fix"
    v = assess(LABEL, c(" FEAT\n", logprobs=[math.log(0.9)]))
    assert v.answer == "feat" and abs(v.confidence - 0.9) < 1e-9


def test_empty_answer_and_refusal_on_word_boundaries():
    text = Prompt("p", "b", output="text")
    assert assess(text, c("   ")).problem == "empty answer"
    assert assess(text, c("Sorry, I can't do that", logprobs=[0.0]), REFUSALS).problem == "refusal"
    assert assess(text, c("I can’t do that", logprobs=[0.0]), REFUSALS).problem == "refusal"
    # "as an AIM protocol" does not contain the phrase "as an AI" on a word boundary
    assert assess(text, c("sent as an AIM message", logprobs=[0.0]), REFUSALS).problem is None


def test_json_must_parse():
    js = Prompt("p", "b", output="json")
    assert assess(js, c('{"a": 1', logprobs=[0.0])).confidence == 0
    v = assess(js, c('```json\n{"a": 1}\n```', logprobs=[0.0]))
    assert v.problem is None and v.answer == '{"a": 1}'


def test_mean_logprob_and_prior():
    text = Prompt("p", "b", output="text")
    v = assess(text, c("hello world", logprobs=[math.log(0.5), math.log(0.5)]))
    assert abs(v.confidence - 0.5) < 1e-9
    assert assess(text, c("hello"), prior_confidence=0.9).confidence == 0.9


def test_labels_output_all_in_set():
    tags = Prompt("p", "b", labels=("a", "b", "c"), output="labels")
    assert assess(tags, c("a, c", logprobs=[0.0])).answer == "a,c"
    assert assess(tags, c("a, z", logprobs=[0.0])).confidence == 0
