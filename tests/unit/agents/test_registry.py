"""The agent registry is the one table of adapters: every name a plan may use has one, and its facts hold."""

from __future__ import annotations

import typing

from coordinator.agents import AGENTS, can_resume, get_agent
from coordinator.plan.model import BUILTIN_AGENTS, AgentProfile
from coordinator.plan.schema import AgentModel


def test_every_agent_a_plan_may_name_has_an_adapter_and_no_other() -> None:
    assert set(AGENTS) == set(BUILTIN_AGENTS)
    base = AgentModel.model_fields["base"].annotation
    literal = next(arg for arg in typing.get_args(base) if typing.get_origin(arg) is typing.Literal)
    assert set(typing.get_args(literal)) == set(BUILTIN_AGENTS)


def test_each_adapter_states_its_program_resume_and_success_rule() -> None:
    profiles = {name: AgentProfile(name=name, base=name) for name in AGENTS}
    facts = {name: (get_agent(profile).program, can_resume(profile), AGENTS[name].requires_completed_turn)
             for name, profile in profiles.items()}
    assert facts == {"codex": ("codex", True, True), "claude": ("claude", True, True),
                     "shell": ("/bin/sh", False, False)}
    assert get_agent(AgentProfile(name="x", base="codex", binary="/opt/codex")).program == "/opt/codex"
