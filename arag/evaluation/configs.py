"""Named configurations for ``arag eval``: a profile plus setting overrides, kept in a TOML file.

``configs.toml`` beside this module holds the defaults (naive, fast, agentic and a few
variants); a user copies it, edits it and passes it with ``--config-file``.

Example:
    >>> configs = load_configs()
    >>> configs["naive"]["profile"], sorted(configs)[:3]
    ('naive', ['agentic', 'default', 'fast'])
    >>> select(configs, "naive,agentic")[1][0]
    'agentic'
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from arag.settings import PROFILES, Settings

DEFAULT_CONFIGS = Path(__file__).with_name("configs.toml")


class ConfigError(ValueError):
    """A configuration file or name that cannot be used."""


def load_configs(path: Path | None = None) -> dict[str, dict]:
    """``{name: overrides}`` from a TOML file, each override checked against the settings."""
    path = Path(path or DEFAULT_CONFIGS)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such configuration file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    configs = {}
    known = set(Settings.model_fields) | {"profile", "tree"}
    for name, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {name!r} must be a table ([{name}]) of settings")
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(f"{path}: configuration {name!r} sets unknown setting(s) {', '.join(unknown)}")
        if "profile" in table and table["profile"] not in PROFILES:
            raise ConfigError(f"{path}: configuration {name!r} names unknown profile {table['profile']!r}")
        try:
            Settings().for_run({"configurable": {k: v for k, v in table.items() if k != "tree"}})
        except ValueError as exc:
            raise ConfigError(f"{path}: configuration {name!r} is invalid: {exc}") from exc
        configs[name] = dict(table)
    return configs


def select(configs: dict[str, dict], names: str) -> list[tuple[str, dict]]:
    """The configurations named in a comma-separated list, in its order."""
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    if not chosen:
        raise ConfigError("no configuration named")
    missing = [n for n in chosen if n not in configs]
    if missing:
        raise ConfigError(f"unknown configuration(s) {', '.join(missing)}; available: {', '.join(sorted(configs))}")
    return [(n, configs[n]) for n in dict.fromkeys(chosen)]
