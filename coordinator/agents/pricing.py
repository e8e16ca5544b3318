"""What an attempt cost: its own token counts times a per-model price (USD per 1M tokens).

Who calls it: ``Engine._summarize`` after the adapter summarized a worker's log, when the adapter did not report a
cost itself (codex never does; Claude Code does, in ``result.total_cost_usd``). Prices come from the plan's
``prices:`` first, then from the packaged defaults in ``coordinator/agents/prices.yaml``; a model in neither has no cost
(None), never a guessed one.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from coordinator.plan.model import AgentProfile, Price

PRICES_FILE = Path(__file__).with_name("prices.yaml")
"""The packaged default price table (``models: {NAME: {input, cached_input, output}}``, USD per 1M tokens)."""

UNIT = "USD per 1M tokens"


@dataclass(frozen=True)
class PricedAttempt:
    """An attempt's cost and what it was computed from (kept in ``summary.json`` as ``price``).

    Attributes:
        cost_usd: US dollars.
        basis: ``{"model", "source" ("plan" or "default"), "input", "cached_input", "output", "unit"}``.
    """

    cost_usd: float
    basis: dict[str, Any]


@functools.lru_cache(maxsize=1)
def default_prices() -> dict[str, Price]:
    """The packaged default prices by model name.

    Raises:
        ValueError: the packaged file is malformed (a packaging bug; the tests load it).
    """
    data = yaml.safe_load(PRICES_FILE.read_text(encoding="utf-8"))
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise ValueError(f"{PRICES_FILE}: expected a 'models' mapping")
    prices = {}
    for name, entry in models.items():
        if not isinstance(entry, dict) or not {"input", "output"} <= set(entry) or set(entry) - {
            "input", "cached_input", "output"
        }:
            raise ValueError(f"{PRICES_FILE}: models.{name}: expected {{input, cached_input, output}}")
        prices[str(name)] = Price(
            input=float(entry["input"]),
            output=float(entry["output"]),
            cached_input=float(entry["cached_input"]) if entry.get("cached_input") is not None else None,
        )
    return prices


def profile_model(profile: AgentProfile) -> str | None:
    """The model a profile runs: its ``model``, else the last ``-c model=…`` override in its ``config``.

    codex parses a ``-c`` value as TOML, falling back to the raw string (docs/codex-exec.md §1); so does this.
    """
    if profile.model:
        return profile.model
    model = None
    for override in profile.config:
        key, _, value = override.partition("=")
        if key.strip() != "model":
            continue
        try:
            parsed = tomllib.loads(f"value = {value.strip()}")["value"]
        except tomllib.TOMLDecodeError:
            parsed = value.strip()
        model = parsed if isinstance(parsed, str) and parsed else model
    return model


def find_price(model: str, plan_prices: dict[str, Price]) -> tuple[Price, str] | None:
    """The price of ``model`` and where it came from (``plan`` or ``default``), or None if neither lists it."""
    if model in plan_prices:
        return plan_prices[model], "plan"
    defaults = default_prices()
    if model in defaults:
        return defaults[model], "default"
    return None


def cost_usd(price: Price, input_tokens: int, cached_input_tokens: int, output_tokens: int) -> float:
    """US dollars for these tokens.

    Args:
        price: USD per 1M tokens.
        input_tokens: all input tokens, cached ones included (as codex and the Responses API count them).
        cached_input_tokens: the part of ``input_tokens`` read from the prompt cache.
        output_tokens: output tokens, reasoning included.
    """
    cached = min(max(cached_input_tokens, 0), max(input_tokens, 0))
    uncached = max(input_tokens, 0) - cached
    cached_price = price.cached_input if price.cached_input is not None else price.input
    return (uncached * price.input + cached * cached_price + max(output_tokens, 0) * price.output) / 1_000_000


def price_attempt(profile: AgentProfile, input_tokens: int, cached_input_tokens: int, output_tokens: int,
                  plan_prices: dict[str, Price]) -> PricedAttempt | None:
    """Cost of one attempt of ``profile`` with these (the attempt's own, not thread-cumulative) tokens.

    Returns:
        The cost and its basis, or None when the profile names no model or the model has no price.
    """
    model = profile_model(profile)
    found = find_price(model, plan_prices) if model else None
    if found is None:
        return None
    price, source = found
    return PricedAttempt(
        cost_usd=cost_usd(price, input_tokens, cached_input_tokens, output_tokens),
        basis={"model": model, "source": source, "input": price.input, "cached_input": price.cached_input,
               "output": price.output, "unit": UNIT},
    )
