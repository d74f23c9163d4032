"""The embedded tier for real: Gemma 3 270M in-process through llama-cpp-python."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from swarmd.config import load_config
from swarmd.costs import Ledger
from swarmd.router import Router
from swarmd.router.prompts import build_prompt

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
LABELS = ("build", "chore", "ci", "docs", "feat", "fix", "perf", "refactor", "style", "test")


@pytest.fixture(scope="module")
def config():
    return load_config(ROOT / "src" / "swarmd" / "llm_config.yaml", env={"ANTHROPIC_API_KEY": "", "OLLAMA_HOST": "http://127.0.0.1:9"})


@pytest.fixture(scope="module")
def provider(config):
    from swarmd.router.providers.llama_cpp import LlamaCppProvider
    return LlamaCppProvider(config.tiers["LOCAL_FAST"][0])


def test_label_distribution_from_one_pass(provider, config):
    prompt = build_prompt(config.actions["classify"], "update the installation guide in the README", LABELS)
    c = provider.classify(prompt)
    assert set(c.label_probs) == set(LABELS)
    assert math.isclose(sum(c.label_probs.values()), 1.0, rel_tol=1e-6)
    assert c.text == max(c.label_probs, key=c.label_probs.get)
    assert c.tokens_out == 1 and c.tokens_in > 100


def test_few_shot_prefix_kv_is_reused(provider, config):
    action = config.actions["classify"]
    provider.classify(build_prompt(action, "first message", LABELS))
    prefix_tokens = len(provider.llm.tokenize(build_prompt(action, "x", LABELS).prefix.encode(), add_bos=True))
    provider.classify(build_prompt(action, "a completely different second message", LABELS))
    assert provider.last_reused_tokens >= prefix_tokens
    # a different prefix (other label set) cannot reuse the examples
    provider.classify(build_prompt(action, "x", ("feat", "fix")))
    assert provider.last_reused_tokens < prefix_tokens


def test_retrieved_examples_after_the_prefix_keep_its_kv_reuse(provider, config):
    action = config.actions["classify"]
    prefix_tokens = len(provider.llm.tokenize(build_prompt(action, "x", LABELS).prefix.encode(), add_bos=True))
    provider.classify(build_prompt(action, "first message", LABELS))
    provider.classify(build_prompt(action, "bump ruff to 0.5", LABELS,
                                   examples=(("bump mypy from 1.9 to 1.10", "build"), ("fix typo", "docs"))))
    assert provider.last_reused_tokens >= prefix_tokens


def test_same_answer_with_and_without_cache(provider, config):
    prompt = build_prompt(config.actions["classify"], "bump pytest from 7.1 to 7.2", LABELS)
    warm = provider.classify(prompt).label_probs
    provider.llm.reset()                                          # cold: nothing cached
    cold = provider.classify(prompt).label_probs
    assert provider.last_reused_tokens == 0
    for label in LABELS:
        assert warm[label] == pytest.approx(cold[label], abs=1e-3)


def test_free_generation_returns_token_logprobs(provider, config):
    prompt = build_prompt(config.actions["summarize"], "The cat sat on the mat. It was warm and sunny.")
    c = provider.complete(prompt, max_tokens=12)
    assert 0 < c.tokens_out <= 12
    assert c.token_logprobs and len(c.token_logprobs) == c.tokens_out
    assert all(lp <= 0 for lp in c.token_logprobs)


def test_router_on_the_real_model_records_the_call(config, tmp_path):
    ledger = Ledger(tmp_path / "l.db")
    router = Router(config, ledger)
    result = router.route("classify", "add a --dry-run flag to the bump command", LABELS, objective_id="o")
    assert result.answer in LABELS and 0 <= result.confidence <= 1
    rows = ledger.rows()
    assert rows[0]["tier"] == "LOCAL_FAST" and rows[0]["provider"] == "llama_cpp" and rows[0]["cost_usd"] == 0
    if result.status == "accepted":
        assert result.tier == "LOCAL_FAST" and len(rows) == 1
    else:   # no Ollama and no API key here: skipped, answer kept
        assert result.reason and len(result.skipped) == 2


def test_calibration_applies_only_to_the_model_and_labels_it_was_fitted_for(provider, config):
    import dataclasses
    prompt = build_prompt(config.actions["classify"], "add a --dry-run flag", LABELS)
    fitted = [c for c in prompt.calibration if c.model == provider.model.model]
    assert fitted, "the shipped classify action has a calibration for the embedded model"
    cal = fitted[0]
    calibrated = provider.classify(prompt)
    raw = calibrated.extra["label_logprobs"]            # ln p(label) over the whole vocabulary
    bias, label_intercept = dict(cal.bias), dict(cal.label_intercept)
    z = {lab: cal.scale * raw[lab] + bias[lab] for lab in LABELS}
    log_norm = math.log(sum(math.exp(v) for v in z.values()))
    answer = max(z, key=z.get)
    expected = 1 / (1 + math.exp(-(cal.slope * (z[answer] - log_norm) + cal.intercept + label_intercept[answer])))
    assert calibrated.text == answer
    assert calibrated.confidence == pytest.approx(expected)
    assert sum(calibrated.label_probs.values()) == pytest.approx(1.0)
    other = provider.classify(dataclasses.replace(prompt, calibration=(cal.model_copy(update={"model": "other"}),)))
    assert other.confidence is None               # falls back to the label-set probability
    subset = build_prompt(config.actions["classify"], "add a --dry-run flag", ("feat", "fix", "docs"))
    assert provider.classify(subset).confidence is None     # fitted on the ten labels, not these three
    yes_no = provider.classify(build_prompt(config.actions["yes_no"], "Is 7 even?"))
    assert yes_no.confidence is None              # no calibration was fitted for yes_no


def test_thread_count_covers_prompt_evaluation_too():
    # llama-cpp-python's own default evaluates prompts on every CPU whatever n_threads says;
    # with several workers on one machine that oversubscribed the cores (~13x slower calls)
    from swarmd.router.providers.llama_cpp import load_llama
    llm = load_llama(None, 512, 1)
    assert (llm.n_threads, llm.n_threads_batch) == (1, 1)


def test_requantized_copy_is_made_once_the_same_bytes_each_time_and_made_again_for_a_newer_source(tmp_path):
    import hashlib
    import os

    from swarmd.router.providers.llama_cpp import _requantized, embedded_model_path
    source = tmp_path / "gemma.gguf"
    source.symlink_to(embedded_model_path())            # the packaged Q4_K_M file, as it is
    first = _requantized(str(source), "q8_0")
    assert first == str(tmp_path / "gemma.q8_0.gguf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gemma.gguf", "gemma.q8_0.gguf"]   # no temporary left
    digest = hashlib.sha256(open(first, "rb").read()).hexdigest()
    made = os.path.getmtime(first)
    assert _requantized(str(source), "q8_0") == first and os.path.getmtime(first) == made     # reused
    os.utime(first, (made - 10**6, made - 10**6))      # older than its source: made again, the same bytes
    assert _requantized(str(source), "q8_0") == first and os.path.getmtime(first) > made - 10**6
    assert hashlib.sha256(open(first, "rb").read()).hexdigest() == digest
    # Q8_0 holds 8.5 bits a weight against Q4_K_M's ~4.5-6: larger than its source
    assert os.path.getsize(first) > os.path.getsize(source)


def test_unknown_quantization_is_refused():
    from swarmd.router.providers.llama_cpp import embedded_model_path
    with pytest.raises(ValueError, match="unknown quantization 'q2_k'"):
        embedded_model_path("q2_k")


def test_the_packaged_q4_k_m_weights_still_load_and_answer(config):
    # quantization: q4_k_m (and its own shipped calibration) for who wants the file as packaged
    from swarmd.router.providers.llama_cpp import LlamaCppProvider
    model = config.tiers["LOCAL_FAST"][0].model_copy(update={"model": "gemma-3-270m-q4_k_m",
                                                               "quantization": "q4_k_m"})
    q4 = LlamaCppProvider(model)
    assert q4.llm is not LlamaCppProvider(config.tiers["LOCAL_FAST"][0]).llm
    got = q4.classify(build_prompt(config.actions["classify"], "bump pyyaml from 6.0 to 6.0.1", LABELS))
    assert got.text == "build" and got.confidence is not None      # its calibration applies
