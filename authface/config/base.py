"""The one config mechanism: typed dataclasses, built from defaults, a YAML file, then ``key=value`` overrides.

Every command's settings (restore, train, prepare, degrade, eval) are dataclasses whose fields carry their types;
choices are ``Literal[...]`` types (see :mod:`.choices`), so a config documents itself and one coercion routine
checks every value. Unknown keys are errors that name the closest valid key. A config class may define
``validate(self)`` for range checks that types cannot express; :func:`load_config` calls it. A root config class
may define ``ALIASES = {"old.key": "new.key"}`` (same section) so renamed keys keep working with a warning.

    >>> from authface.config import RestoreConfig, load_config
    >>> cfg = load_config(RestoreConfig, None, ["sampler.steps=30", "face.upscale=2"])
    >>> cfg.sampler.steps, cfg.face.upscale
    (30, 2)
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import types
import typing
import warnings
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

logger = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A config file or override names an unknown key, a value of the wrong type or out of range."""


def choices(tp: Any) -> tuple:
    """The allowed values of a ``Literal[...]`` type (also inside ``Optional``), e.g. ``choices(ColorFix)``."""
    if typing.get_origin(tp) is Literal:
        return typing.get_args(tp)
    out: tuple = ()
    for arg in typing.get_args(tp):
        out += choices(arg)
    return out


C = TypeVar("C")


def _fields(cls) -> dict[str, tuple[Any, Any]]:
    hints = typing.get_type_hints(cls)
    return {f.name: (hints[f.name], f) for f in dataclasses.fields(cls)}


def all_keys(cls, prefix: str = "") -> list[str]:
    """Dotted names of every leaf key of a config dataclass (for suggestions and docs)."""
    keys = []
    for name, (tp, _) in _fields(cls).items():
        if dataclasses.is_dataclass(tp):
            keys += all_keys(tp, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def _unknown(key: str, root_cls) -> ConfigError:
    keys = all_keys(root_cls)
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.5)
    if not close:  # match on the last component too: "stpes" -> "sampler.steps"
        leaf = key.rsplit(".", 1)[-1]
        by_leaf = {k.rsplit(".", 1)[-1]: k for k in keys}
        hit = difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.6)
        close = [by_leaf[hit[0]]] if hit else []
    hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(keys)}"
    return ConfigError(f"unknown config key '{key}'{hint}")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)
        for option in allowed:  # "2" from the command line matches Literal[2]; "true" matches Literal[True]
            if value == option or (
                isinstance(value, str) and not isinstance(option, str) and value == str(option)
            ):
                return option
        close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"{key} must be one of {', '.join(map(str, allowed))}; got {value!r}{hint}")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: cannot be {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, str, float)):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        try:
            as_float = float(value)
        except ValueError:
            raise ConfigError(f"{key} must be an integer, got {value!r}") from None
        if as_float != int(as_float):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return int(as_float)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return str(value)
    if origin is list:
        (item_tp,) = typing.get_args(tp) or (Any,)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return [v if item_tp is Any else _coerce(v, item_tp, key) for v in value]
    return value


def _apply(obj: Any, data: dict, root_cls, prefix: str = "") -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"'{prefix.rstrip('.') or 'config'}' must be a mapping, got {data!r}")
    fields = _fields(type(obj))
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in fields and dotted in getattr(root_cls, "ALIASES", {}):
            new = root_cls.ALIASES[dotted]
            warnings.warn(f"config key '{dotted}' is deprecated; use '{new}'", FutureWarning, stacklevel=2)
            logger.warning("config key '%s' is deprecated; use '%s'", dotted, new)
            dotted, key = new, new.rsplit(".", 1)[-1]  # aliases stay inside their section
        if key not in fields:  # a misspelt section ("fase.crop_size"): report the full key, so it gets a suggestion
            node = value
            while isinstance(node, dict) and node:
                first = next(iter(node))
                dotted, node = f"{dotted}.{first}", node[first]
            raise _unknown(dotted, root_cls)
        tp, _ = fields[key]
        if dataclasses.is_dataclass(tp):
            _apply(getattr(obj, key), value or {}, root_cls, f"{dotted}.")
        else:
            setattr(obj, key, _coerce(value, tp, dotted))


def parse_override(text: str) -> tuple[str, Any]:
    """``"sampler.steps=30"`` -> ``("sampler.steps", 30)``; the value is parsed as YAML (numbers, bools, null)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key=value, e.g. sampler.steps=30")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def set_key(cfg: Any, key: str, value: Any) -> None:
    """Set one dotted key on a config, with the same checks as a file."""
    data: dict = {}
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    _apply(cfg, data, type(cfg))


def load_config(cls: type[C], path: str | Path | None = None, overrides: list[str] | None = None) -> C:
    """Defaults of ``cls``, updated by the YAML file at ``path``, then by ``key=value`` overrides."""
    cfg = cls()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML: {e}") from None
        try:
            _apply(cfg, data, cls)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    for text in overrides or []:
        key, value = parse_override(text)
        set_key(cfg, key, value)
    validate(cfg)
    return cfg


def validate(cfg: Any) -> None:
    """Run ``cfg.validate()`` where the config class defines one (range checks beyond types)."""
    check = getattr(cfg, "validate", None)
    if callable(check):
        check()


def to_dict(cfg: Any) -> dict:
    """Plain nested dict (JSON/YAML-ready) of a config dataclass."""
    return dataclasses.asdict(cfg)
