"""The agent registry: the names in ``plan.model.BUILTIN_AGENTS`` are the one list (plan files are checked
against it), each the module of its adapter; the adapters' facts hold."""

from __future__ import annotations

import importlib
import sys

import pytest
from pydantic import ValidationError

from coordinator.agents import AGENTS, AgentBase, can_resume, get_agent
from coordinator.plan.model import BUILTIN_AGENTS, AgentProfile
from coordinator.plan.schema import AgentModel


def test_every_agent_a_plan_may_name_has_an_adapter_and_no_other() -> None:
    assert list(AGENTS) == list(BUILTIN_AGENTS)
    for name in BUILTIN_AGENTS:
        adapter = importlib.import_module(f"coordinator.agents.{name}").ADAPTER
        assert AGENTS[name] is adapter and issubclass(adapter, AgentBase)
    assert AgentModel.model_validate({"base": "claude"}).base == "claude"
    with pytest.raises(ValidationError, match="Input should be 'codex', 'claude', 'shell' or 'mcp'"):
        AgentModel.model_validate({"base": "gemini"})


def test_each_adapter_states_its_program_resume_and_success_rule() -> None:
    profiles = {name: AgentProfile(name=name, base=name) for name in AGENTS}
    facts = {name: (get_agent(profile).program, can_resume(profile), AGENTS[name].requires_completed_turn)
             for name, profile in profiles.items()}
    assert facts == {"codex": ("codex", True, True), "claude": ("claude", True, True),
                     "shell": ("/bin/sh", False, False), "mcp": (sys.executable, False, False)}
    assert get_agent(AgentProfile(name="x", base="codex", binary="/opt/codex")).program == "/opt/codex"
