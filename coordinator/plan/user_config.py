"""The user's own config file: settings a person keeps for every plan on the machine.

Where it is: ``$COORD_CONFIG``, else ``$XDG_CONFIG_HOME/coord/config.yaml``, else ``~/.config/coord/config.yaml``.
What reads it: ``notify`` (``notify:``, where to send notifications) and ``plan.loader`` (``shell.allow:``, an
allow-list every ``shell`` profile of every plan must pass as well as its own).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml


def config_path() -> Path:
    """The user's config file path (it may not exist)."""
    explicit = os.environ.get("COORD_CONFIG")
    if explicit:
        return Path(explicit)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "coord" / "config.yaml"


def read_section(name: str, path: Path | None = None) -> tuple[Path, Any]:
    """The top-level ``name`` section of the config file and the file's path; the section is None when the file
    or the section is missing.

    Raises:
        ValueError: the file exists but cannot be read or is not a YAML mapping (the message names the file).
    """
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return path, None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the config file: {exc}") from exc
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of sections (notify:, shell:)")
    return path, data.get(name)
