"""Whether an agent profile can work at all, found without spending anything: its program starts, says its version,
and has credentials to show the model. ``coord run`` refuses to launch when one of these fails (exit 2), and
``coord doctor`` shows them as a table, with a real turn on top (``cli/doctor_cmd.py``).

Where the facts come from:

- codex keeps its login in ``$CODEX_HOME/auth.json`` (``codex login``; ``~/.codex`` by default) and reads
  ``OPENAI_API_KEY``/``CODEX_API_KEY``; a custom provider (``model_provider`` and ``model_providers.NAME`` in
  ``-c`` overrides or ``$CODEX_HOME/config.toml``) names the variable holding its key in ``env_key``, and needs
  none without one.
- Claude Code reads ``ANTHROPIC_API_KEY``/``ANTHROPIC_AUTH_TOKEN``/``CLAUDE_CODE_OAUTH_TOKEN``, the Bedrock and
  Vertex switches, or the login ``claude`` keeps in ``$HOME/.claude/.credentials.json`` (``oauthAccount`` in
  ``$HOME/.claude.json`` on machines whose login lives in a keychain).
"""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.agents.codex_rollout import codex_home
from coordinator.plan.model import AgentProfile

VERSION_TIMEOUT = 30.0
"""Seconds ``PROGRAM --version`` may take (a cold ``node`` start on a busy machine takes several)."""

CODEX_KEY_VARS = ("OPENAI_API_KEY", "CODEX_API_KEY")
CLAUDE_KEY_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN",
                   "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX")


@dataclass(frozen=True)
class Finding:
    """One readiness check of one profile.

    Attributes:
        check: what was checked (``version``, ``credentials``).
        ok: whether it holds.
        detail: what was found (``codex-cli 0.169.0``, ``OPENAI_API_KEY is set``).
        fix: what a person does when it fails (``run `codex login```); "" when it holds.
    """

    check: str
    ok: bool
    detail: str
    fix: str = ""


def worker_env(profile: AgentProfile) -> dict[str, str]:
    """The environment the profile's workers get: the coordinator's, with the profile's ``env`` on top."""
    return {**os.environ, **dict(profile.env)}


def version(profile: AgentProfile, program: str) -> Finding:
    """``PROGRAM --version``: its first line when it exits 0 within ``VERSION_TIMEOUT`` seconds."""
    try:
        done = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=VERSION_TIMEOUT,
                              stdin=subprocess.DEVNULL, env=worker_env(profile))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Finding("version", False, f"`{program} --version` did not run: {exc}",
                       f"reinstall it, or set agents.{profile.name}.binary to a working one")
    first = (done.stdout.strip() or done.stderr.strip()).splitlines()[:1]
    if done.returncode != 0:
        return Finding("version", False, f"`{program} --version` exited {done.returncode}: {''.join(first)}",
                       f"reinstall it, or set agents.{profile.name}.binary to a working one")
    return Finding("version", True, first[0] if first else "(no version printed)")


def codex_credentials(profile: AgentProfile) -> Finding:
    """Whether codex has what its model provider needs (see the module docstring)."""
    env = worker_env(profile)
    home = codex_home(dict(profile.env))
    provider, providers = _codex_provider(profile, home)
    if provider not in (None, "openai"):
        settings = providers.get(provider)
        if not isinstance(settings, dict):
            return Finding("credentials", True, f"provider {provider!r} (codex's own, or defined elsewhere)")
        key_var = settings.get("env_key")
        if not key_var:
            return Finding("credentials", True, f"provider {provider!r} needs no key")
        if env.get(str(key_var)):
            return Finding("credentials", True, f"provider {provider!r}: {key_var} is set")
        return Finding("credentials", False, f"provider {provider!r} reads its key from {key_var}, which is not set",
                       f"set {key_var} (in the environment or agents.{profile.name}.env)")
    for name in CODEX_KEY_VARS:
        if env.get(name):
            return Finding("credentials", True, f"{name} is set")
    if (home / "auth.json").is_file():
        return Finding("credentials", True, f"logged in ({home / 'auth.json'})")
    return Finding("credentials", False, f"codex is not logged in: no {home / 'auth.json'} and no "
                   f"{' or '.join(CODEX_KEY_VARS)}", "run `codex login`, or set OPENAI_API_KEY")


def claude_credentials(profile: AgentProfile) -> Finding:
    """Whether Claude Code has a key or a login (see the module docstring)."""
    env = worker_env(profile)
    for name in CLAUDE_KEY_VARS:
        if env.get(name):
            return Finding("credentials", True, f"{name} is set")
    home = Path(env.get("HOME") or Path.home())
    if (home / ".claude" / ".credentials.json").is_file():
        return Finding("credentials", True, f"logged in ({home / '.claude' / '.credentials.json'})")
    if _has_key(home / ".claude.json", "oauthAccount"):
        return Finding("credentials", True, f"logged in ({home / '.claude.json'})")
    return Finding("credentials", False, "Claude Code is not logged in and no ANTHROPIC_API_KEY is set",
                   "run `claude` once and log in, or set ANTHROPIC_API_KEY")


def _codex_provider(profile: AgentProfile, home: Path) -> tuple[str | None, Mapping[str, Any]]:
    """The ``model_provider`` codex will use and its ``model_providers`` table: ``config.toml`` overlaid with the
    profile's ``-c`` overrides (each ``key=value`` a TOML value, as codex reads them)."""
    settings: dict[str, Any] = {}
    try:
        settings = tomllib.loads((home / "config.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        pass
    providers: dict[str, Any] = dict(settings.get("model_providers") or {})
    provider = settings.get("model_provider")
    for override in profile.config:
        key, _, raw = override.partition("=")
        key = key.strip()
        try:
            value = tomllib.loads(f"value = {raw}")["value"]
        except tomllib.TOMLDecodeError:
            value = raw
        if key == "model_provider":
            provider = value
        elif key.startswith("model_providers."):
            name, _, field = key.removeprefix("model_providers.").partition(".")
            if field:  # model_providers.NAME.env_key="X"
                providers[name] = {**(providers.get(name) or {}), field: value}
            elif isinstance(value, dict):
                providers[name] = value
    return (str(provider) if provider is not None else None), providers


def _has_key(path: Path, key: str) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and bool(data.get(key))
