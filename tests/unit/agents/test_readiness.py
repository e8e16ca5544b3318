"""The free checks before a run: does an agent profile have credentials (``agents.readiness``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.agents.readiness import claude_credentials, codex_credentials
from coordinator.plan.model import AgentProfile


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("OPENAI_API_KEY", "CODEX_API_KEY", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN",
                 "CLAUDE_CODE_OAUTH_TOKEN", "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "MY_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex-home"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "codex-home").mkdir()
    (tmp_path / "home").mkdir()


def test_codex_without_a_login_or_key_is_not_ready_and_says_how(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    profile = AgentProfile(name="codex", base="codex")
    missing = codex_credentials(profile)
    assert not missing.ok and "codex is not logged in" in missing.detail and "codex login" in missing.fix

    (tmp_path / "codex-home/auth.json").write_text("{}")
    assert codex_credentials(profile).ok
    (tmp_path / "codex-home/auth.json").unlink()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    assert codex_credentials(profile).detail == "OPENAI_API_KEY is set"


@pytest.mark.parametrize("config, env, ok", [
    (('model_provider="local"', 'model_providers.local={name="L", base_url="http://127.0.0.1:1/v1", '
      'env_key="MY_KEY"}'), {}, False),
    (('model_provider="local"', 'model_providers.local={name="L", base_url="http://127.0.0.1:1/v1", '
      'env_key="MY_KEY"}'), {"MY_KEY": "k"}, True),
    (('model_provider="local"', 'model_providers.local.env_key="MY_KEY"'), {"MY_KEY": "k"}, True),
    (('model_provider="local"', 'model_providers.local={name="L", base_url="http://127.0.0.1:1/v1"}'), {}, True),
])
def test_a_custom_codex_provider_needs_the_key_it_names(config: tuple[str, ...], env: dict[str, str],
                                                         ok: bool) -> None:
    profile = AgentProfile(name="local", base="codex", config=config, env=tuple(env.items()))
    found = codex_credentials(profile)
    assert found.ok is ok, found
    if not ok:
        assert found.detail == "provider 'local' reads its key from MY_KEY, which is not set"


def test_the_provider_in_codex_config_toml_counts(tmp_path: Path) -> None:
    (tmp_path / "codex-home/config.toml").write_text(
        'model_provider = "ollama"\n[model_providers.ollama]\nname = "Ollama"\nbase_url = "http://127.0.0.1:1"\n')
    assert codex_credentials(AgentProfile(name="codex", base="codex")).detail == "provider 'ollama' needs no key"


def test_claude_needs_a_key_or_its_login(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    profile = AgentProfile(name="claude", base="claude")
    assert not claude_credentials(profile).ok
    (tmp_path / "home/.claude").mkdir()
    (tmp_path / "home/.claude/.credentials.json").write_text("{}")
    assert claude_credentials(profile).ok
    (tmp_path / "home/.claude/.credentials.json").unlink()
    (tmp_path / "home/.claude.json").write_text('{"oauthAccount": {"emailAddress": "a@b"}}')
    assert claude_credentials(profile).ok
    (tmp_path / "home/.claude.json").unlink()
    with_key = AgentProfile(name="claude", base="claude", env=(("ANTHROPIC_API_KEY", "k"),))
    assert claude_credentials(with_key).detail == "ANTHROPIC_API_KEY is set"
