"""The ``hivemem`` command's configuration: the TOML config file, and the client's and
server's options by precedence (flag, environment, config file, default)."""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from hivemem.api.settings import Settings
from hivemem.memory.errors import InvalidInput

__all__ = ["DEFAULT_URL", "DEFAULT_CONFIG", "load_config", "client_options", "server_settings"]

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_CONFIG = "~/.config/hivemem/config.toml"


def load_config(path: str | None, env: Mapping[str, str]) -> dict[str, Any]:
    """The TOML config file's table ({} when the default file does not exist)."""
    explicit = path or env.get("HIVEMEM_CONFIG")
    target = Path(explicit or DEFAULT_CONFIG).expanduser()
    if not explicit and not target.is_file():
        return {}
    try:
        with target.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise InvalidInput("config", f"cannot read {target}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput("config", f"{target} is not TOML: {exc}") from None


def _pick(flag: Any, env: Mapping[str, str], names: Sequence[str], cfg: Any, default: Any) -> Any:
    if flag is not None:
        return flag
    for name in names:
        if env.get(name):
            return env[name]
    return cfg if cfg is not None else default


def client_options(
    args: argparse.Namespace, env: Mapping[str, str], cfg: Mapping[str, Any]
) -> tuple[str, str | None]:
    """(url, api_key) by precedence: flag, environment, config file, default."""
    url = _pick(args.url, env, ["HIVEMEM_URL"], cfg.get("url"), DEFAULT_URL)
    key = _pick(args.api_key, env, ["HIVEMEM_API_KEY"], cfg.get("api_key"), None)
    return str(url), (str(key) if key else None)


def server_settings(
    args: argparse.Namespace, env: Mapping[str, str], cfg: Mapping[str, Any]
) -> Settings:
    """The server's ``Settings`` by precedence: flag, environment, config file, default."""
    names = {f.name for f in fields(Settings)}
    merged: dict[str, str] = {}
    for name, value in cfg.items():  # the config file is the weakest source
        field = "data_dir" if name == "data" else name
        if field in names:
            merged[f"HIVEMEM_{field.upper()}"] = str(value)
    merged.update(env)
    if env.get("HIVEMEM_DATA"):
        merged["HIVEMEM_DATA_DIR"] = env["HIVEMEM_DATA"]
    flags = {
        "data_dir": args.data,
        "host": args.host,
        "port": args.port,
        "durability": args.durability,
        "admin_key": args.admin_key,
        "max_inflight_writes": getattr(args, "max_inflight_writes", None),
    }
    try:
        return Settings.from_env(merged, **flags)
    except ValueError as exc:
        raise InvalidInput("settings", str(exc)) from None
