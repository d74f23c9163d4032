"""llm_config.yaml loading: the shipped file is valid; each kind of mistake
fails with file:line, the key path, what was expected and what was found."""

import re
from pathlib import Path

import pytest

from swarmd.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "src" / "swarmd" / "llm_config.yaml").read_text()


def _line_of(needle: str) -> int:
    return next(i for i, line in enumerate(TEXT.splitlines(), 1) if needle in line)


def _error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "llm_config.yaml", env={})
    return info.value


def test_shipped_config_is_valid_and_has_the_three_tiers():
    config = load_config(ROOT / "src" / "swarmd" / "llm_config.yaml", env={})
    assert list(config.tiers) == ["LOCAL_FAST", "LOCAL_QUALITY", "API_FALLBACK"]
    assert [m.provider for t in config.tiers.values() for m in t] == ["llama_cpp", "ollama", "anthropic"]
    assert {"classify", "tag", "yes_no", "extract", "summarize", "generate_code", "reason", "plan"} <= set(config.actions)
    assert config.quality.threshold == 0.7
    assert config.chain_from("extract") == ["LOCAL_QUALITY", "API_FALLBACK"]


def test_negative_price():
    e = _error(TEXT.replace("price_per_mtok_in: 2.0", "price_per_mtok_in: -3"))
    assert e.key == "tiers.API_FALLBACK[0].price_per_mtok_in"
    assert e.line == _line_of("price_per_mtok_in: 2.0")
    assert ">= 0" in e.expected and "-3" in e.found
    assert str(e).startswith(f"llm_config.yaml:{e.line}: ")


def test_unknown_key():
    e = _error(TEXT.replace("      n_threads: 2", "      n_thread: 2"))
    assert e.key == "tiers.LOCAL_FAST[0].n_thread" and "n_thread" in e.found
    assert e.line == _line_of("n_threads: 2")


def test_quantization_is_for_the_embedded_model_only():
    e = _error(TEXT.replace("      path: null\n", "      path: /models/mine.gguf\n      quantization: q8_0\n", 1))
    assert e.key == "tiers.LOCAL_FAST[0].quantization" and e.found == "'q8_0'"
    assert "path null" in e.expected and "llama-quantize" in e.expected
    e = _error(TEXT.replace("      model: llama3.1:8b\n", "      model: llama3.1:8b\n      quantization: q8_0\n", 1))
    assert e.key == "tiers.LOCAL_QUALITY[0].quantization"
    e = _error(TEXT.replace("      quantization: q8_0 ", "      quantization: q2_k ", 1))
    assert e.key == "tiers.LOCAL_FAST[0].quantization" and e.found == "'q2_k'"
    assert e.expected == "one of 'q4_k_m' or 'q8_0'"


def test_wrong_type():
    e = _error(TEXT.replace("timeout_s: 120", "timeout_s: soon"))
    assert e.key == "tiers.LOCAL_QUALITY[0].timeout_s"
    assert e.expected == "a number" and "'soon'" in e.found


def test_missing_model():
    e = _error(TEXT.replace("      model: llama3.1:8b\n", ""))
    assert e.key == "tiers.LOCAL_QUALITY[0].model" and e.found == "nothing"


def test_chain_names_undefined_tier():
    e = _error(TEXT.replace("chain: [LOCAL_FAST,", "chain: [LOCAL_FASTER,"))
    assert e.key == "escalation.chain[0]" and "LOCAL_FASTER" in e.found
    assert e.line == _line_of("chain: [LOCAL_FAST")


def test_bad_output_kind():
    e = _error(TEXT.replace("output: code", "output: prose"))
    assert e.key == "actions.generate_code.output" and "'prose'" in e.found


def test_threshold_out_of_range():
    e = _error(TEXT.replace("threshold: 0.7", "threshold: 7"))
    assert e.key == "quality.threshold" and "<= 1" in e.expected


def test_item_template_without_input():
    e = _error(TEXT.replace('item: "Text: {input}\\nSummary:"', 'item: "Text:\\nSummary:"'))
    assert e.key == "actions.summarize.item" and "{input}" in e.expected


def test_invalid_yaml_names_line():
    e = _error("tiers:\n  LOCAL_FAST: [\n")
    assert e.expected == "valid YAML" and e.line is not None


def test_missing_file():
    with pytest.raises(ConfigError) as info:
        load_config("/nonexistent/llm_config.yaml", env={})
    assert "/nonexistent/llm_config.yaml" in str(info.value)


def test_env_overrides_and_secret_never_shown():
    config = parse_config(TEXT, "x", env={"ANTHROPIC_API_KEY": "sk-ant-SECRET123",
                                          "OLLAMA_HOST": "h1:11434, http://h2:9"})
    model = config.tiers["API_FALLBACK"][0]
    assert model.api_key.get_secret_value() == "sk-ant-SECRET123"
    assert "SECRET123" not in repr(config) and "SECRET123" not in str(model)
    assert config.tiers["LOCAL_QUALITY"][0].hosts == ["http://h1:11434", "http://h2:9"]


def test_price_units_are_per_million_tokens():
    model = load_config(ROOT / "src" / "swarmd" / "llm_config.yaml", env={}).tiers["API_FALLBACK"][0]
    # 1,000 input tokens at $2/MTok + 500 output tokens at $10/MTok
    assert (model.price_per_mtok_in, model.price_per_mtok_out) == (2.0, 10.0)
    assert model.cost_usd(1000, 500) == pytest.approx(0.002 + 0.005)


def test_calibration_scale_must_be_positive_and_bias_a_mapping():
    # the shipped values change with each refit: replace the first calibration's lines by pattern
    e = _error(re.sub(r"(?m)^        scale: [0-9.]+$", "        scale: 0", TEXT, count=1))
    assert e.key == "actions.classify.label_calibration[0].scale" and "> 0" in e.expected
    e = _error(re.sub(r"(?m)^        bias: \{(.*)\}$", r"        bias: [\1]", TEXT, count=1))
    assert e.key == "actions.classify.label_calibration[0].bias"


def test_shipped_calibrations_cover_the_ten_commit_types_in_each_prompt_form():
    config = load_config(ROOT / "src" / "swarmd" / "llm_config.yaml", env={})
    cals = config.actions["classify"].label_calibration
    # one per prompt form for the shipped Q8_0 weights and for the packaged Q4_K_M ones
    assert sorted((c.model, c.prompt) for c in cals) == [
        ("gemma-3-270m-q4_k_m", "fixed"), ("gemma-3-270m-q4_k_m", "retrieved"),
        ("gemma-3-270m-q8_0", "fixed"), ("gemma-3-270m-q8_0", "retrieved")]
    assert config.tiers["LOCAL_FAST"][0].model == "gemma-3-270m-q8_0"
    assert config.tiers["LOCAL_FAST"][0].quantization == "q8_0"
    for cal in cals:        # each covers exactly the ten types of the commit data
        assert set(cal.bias) == set(cal.label_intercept) == {
            "build", "chore", "ci", "docs", "feat", "fix", "perf", "refactor", "style", "test"}


SMALL = """\
version: 1
tiers:
  LOCAL_FAST:
    - provider: echo
      model: m
      price_per_mtok_in: -1
      price_per_mtok_out: 0
      context_window: 2048
      timeout_s: 5
      n_thread: 2
escalation:
  chain: [LOCAL_FAST]
actions:
  summarize:
    tier: LOCAL_FAST
    output: prose
    instruction: Summarize.
    item: "Text: {input}"
"""


def test_every_mistake_is_reported_with_its_line():
    e = _error(SMALL)
    assert [(p.line, p.key) for p in e.problems] == [
        (6, "tiers.LOCAL_FAST[0].price_per_mtok_in"),
        (10, "tiers.LOCAL_FAST[0].n_thread"),
        (16, "actions.summarize.output"),
    ]
    assert e.problems[0].found == "-1" and e.problems[2].found == "'prose'"
    assert e.problems[1].found == "unknown key 'n_thread' (did you mean 'n_threads'?)"
    assert str(e).splitlines() == [
        "llm_config.yaml:6: tiers.LOCAL_FAST[0].price_per_mtok_in: expected a number >= 0, found -1",
        "llm_config.yaml:10: tiers.LOCAL_FAST[0].n_thread: expected a known key (provider, model, price_per_mtok_in, "
        "price_per_mtok_out, context_window, timeout_s, max_output_tokens, path, quantization, n_threads, "
        "label_temperature, hosts, "
        "api_key, base_url, prior_confidence), found unknown key 'n_thread' (did you mean 'n_threads'?)",
        "llm_config.yaml:16: actions.summarize.output: expected one of 'label', 'labels', 'yes_no', 'json', 'text' "
        "or 'code', found 'prose'",
    ]


def test_every_dangling_reference_is_reported():
    good = SMALL.replace("price_per_mtok_in: -1", "price_per_mtok_in: 0").replace("n_thread: 2", "n_threads: 2")
    good = good.replace("output: prose", "output: text")
    e = _error(good.replace("chain: [LOCAL_FAST]", "chain: [LOCAL_FAST, LOCAL_SLOW, API]"))
    assert [(p.line, p.key, p.found) for p in e.problems] == [
        (12, "escalation.chain[1]", "'LOCAL_SLOW'"), (12, "escalation.chain[2]", "'API'")]
    two_actions = good + "  reason:\n    tier: API\n    output: text\n    instruction: Think.\n    item: '{input}'\n"
    e = _error(two_actions.replace("tier: LOCAL_FAST", "tier: LOCAL_SLOW"))
    assert [(p.line, p.key, p.found) for p in e.problems] == [
        (15, "actions.summarize.tier", "'LOCAL_SLOW'"), (20, "actions.reason.tier", "'API'")]
    assert e.problems[0].expected == "a tier in escalation.chain (LOCAL_FAST)"


def test_config_error_is_bad_input_and_a_value_error():
    from swarmd.errors import EXIT_BAD_INPUT, BadInput
    e = _error(SMALL)
    assert isinstance(e, BadInput) and isinstance(e, ValueError) and e.exit_code == EXIT_BAD_INPUT



AGENT = "  agent:\n    tier: LOCAL_QUALITY\n"
PLAN = "  plan:\n    tier: LOCAL_QUALITY\n"


def test_agent_strategy_must_be_servable_by_every_action_an_agent_objective_routes_through():
    local_agent = TEXT.replace(AGENT, AGENT + "    strategy: local_only\n")
    assert parse_config(local_agent, "llm_config.yaml", env={}).actions["agent"].strategy == "local_only"
    e = _error(local_agent.replace(PLAN, PLAN.replace("LOCAL_QUALITY", "API_FALLBACK")))   # plan: API tier only
    line = local_agent[:local_agent.index("    strategy: local_only")].count("\n") + 1
    assert [(p.line, p.key, p.found) for p in e.problems] == [(line, "actions.agent.strategy", "'local_only'")]
    assert e.expected == ("a strategy with a model to call: no local model in the chain from API_FALLBACK "
                          "(actions.plan: an agent objective routes its plan with its strategy)")
    # no plan action configured: nothing to check it against (the agent objective is then unresolved at once)
    no_plan = local_agent[:local_agent.index(PLAN)] + local_agent[local_agent.index("  fill_slot:\n"):]
    loaded = parse_config(no_plan, "llm_config.yaml", env={})
    assert "plan" not in loaded.actions and loaded.actions["agent"].strategy == "local_only"
