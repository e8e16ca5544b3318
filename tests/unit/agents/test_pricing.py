"""Prices and costs: the packaged default table, the plan's ``prices:`` (with the loader's problem lines), the math."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.agents.pricing import cost_usd, default_prices, find_price, price_attempt, profile_model
from coordinator.plan.loader import load_plan, validate_plan
from coordinator.plan.model import AgentProfile, Price


def test_packaged_defaults_load_and_are_sane() -> None:
    prices = default_prices()

    assert {"gpt-5.5", "gpt-5", "gpt-5-mini", "claude-sonnet-4-5"} <= set(prices)
    for name, price in prices.items():
        assert price.input > 0 and price.output > 0, name
        assert price.cached_input is None or 0 <= price.cached_input <= price.input, name


def test_cost_counts_cached_input_at_its_own_price_and_reasoning_as_output() -> None:
    price = Price(input=2.0, cached_input=0.5, output=10.0)

    assert cost_usd(price, 1_000_000, 0, 0) == pytest.approx(2.0)
    assert cost_usd(price, 1_000_000, 400_000, 100_000) == pytest.approx(600_000 * 2e-6 + 400_000 * 0.5e-6 + 1.0)
    # no cached price: cached tokens cost as much as the others; more cached than input cannot go negative
    assert cost_usd(Price(input=2.0, output=10.0), 1000, 1000, 0) == pytest.approx(0.002)
    assert cost_usd(price, 100, 500, 0) == pytest.approx(100 * 0.5e-6)


def test_plan_prices_win_over_defaults_and_unknown_models_have_no_cost() -> None:
    mine = Price(input=1.0, output=1.0)

    assert find_price("gpt-5.5", {"gpt-5.5": mine}) == (mine, "plan")
    assert find_price("gpt-5.5", {}) == (default_prices()["gpt-5.5"], "default")
    assert find_price("no-such-model", {}) is None
    assert price_attempt(AgentProfile(name="x", base="codex", model="no-such-model"), 10, 0, 10, {}) is None
    assert price_attempt(AgentProfile(name="x", base="codex"), 10, 0, 10, {}) is None


def test_model_comes_from_the_profile_or_a_config_override() -> None:
    assert profile_model(AgentProfile(name="x", base="codex", model="gpt-5", config=('model="o3"',))) == "gpt-5"
    assert profile_model(AgentProfile(name="x", base="codex", config=('model="gpt-5-mini"', "a=1"))) == "gpt-5-mini"
    assert profile_model(AgentProfile(name="x", base="codex", config=("model = gpt-5.5",))) == "gpt-5.5"
    assert profile_model(AgentProfile(name="x", base="codex", config=("model_provider=x",))) is None

    priced = price_attempt(AgentProfile(name="x", base="codex", config=('model="m"',)), 3000, 1000, 100,
                           {"m": Price(input=1.0, cached_input=0.1, output=4.0)})
    assert priced is not None
    assert priced.cost_usd == pytest.approx((2000 * 1.0 + 1000 * 0.1 + 100 * 4.0) / 1e6)
    assert priced.basis == {"model": "m", "source": "plan", "input": 1.0, "cached_input": 0.1, "output": 4.0,
                            "unit": "USD per 1M tokens"}


PHASES = "phases:\n  - {id: P01, kind: stub, agent: shell, script: 'true'}\n"


def test_plan_prices_are_loaded(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text("plan: X\nprices:\n  gpt-5.5: {input: 4, cached_input: 0.4, output: 20}\n"
                    "  m: {input: 1, output: 2}\n" + PHASES, encoding="utf-8")

    plan = load_plan(path, tmp_path)

    assert plan.prices == {"gpt-5.5": Price(input=4.0, cached_input=0.4, output=20.0),
                           "m": Price(input=1.0, output=2.0)}


def test_bad_prices_are_reported_with_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(
        "plan: X\n"
        "prices:\n"
        "  a: {input: 1, cached_input: -1, outptu: 3}\n"
        "  b: {input: yes, output: 1}\n"
        "  c: 3\n"
        "  '': {input: 1, output: 1}\n" + PHASES,
        encoding="utf-8",
    )

    found = [str(problem) for problem in validate_plan(path, tmp_path)]

    assert found == [
        "plan.yaml:3:6: prices.a: missing required key 'output'",
        "plan.yaml:3:31: prices.a.cached_input: must be at least 0.0, got -1",
        "plan.yaml:3:35: prices.a: unknown key 'outptu' (did you mean 'output'?)",
        "plan.yaml:4:14: prices.b.input: expected a number, got True",
        "plan.yaml:5:6: prices.c: expected a mapping, got 3",
        "plan.yaml:6:3: prices.: model name must not be empty",
    ]
