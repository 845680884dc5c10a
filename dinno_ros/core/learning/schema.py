"""
Typed configs and the name -> class tables of optimizers, problems and graphs.

A leaf module: it imports nothing of dinno_ros, so every other module may import it.

Config dataclass fields describe their allowed values in ``metadata`` (see :func:`spec`):
``choices`` (a tuple of allowed values; for a list, of each item), ``min`` / ``max`` (inclusive
bounds), ``gt`` (exclusive lower bound). Unknown keys, missing keys, wrong types and out-of-range
values raise ``ValueError`` naming ``<section>.<key>`` and what is allowed. Keys listed in a config
class's ``IGNORED_KEYS`` (key -> why: research keys without effect here, such as ``profile``) are
accepted, and dropped with an info line saying why.

The tables are filled by the classes' own modules (``@register_optimizer(name)``,
``@register_problem(name)``); ``dinno_ros.core.learning.registry`` imports those modules, so the
built-in names are there once it is imported.
"""

from __future__ import annotations

import dataclasses
import logging
import types
import typing
from typing import Any, Callable, Mapping, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar('T')

GRAPH_TYPES = ('wheel', 'cycle', 'complete', 'random', 'disk')


class Registry:
    """
    Names -> classes of one base type.

    ``section`` and ``key`` name the config key holding the name (e.g. ``optimizer_config`` and
    ``alg_name``). The base class binds itself with :meth:`set_base`.
    """

    def __init__(self, kind: str, section: str, key: str, base_name: str) -> None:
        self.kind, self.section, self.key, self.base_name = kind, section, key, base_name
        self.base: type | None = None
        self._classes: dict[str, type] = {}
        self._aliases: dict[str, str] = {}  # another name -> the registered name

    def set_base(self, base: type) -> type:
        """Class decorator: make ``base`` the class every registered class must subclass."""
        self.base = base
        return base

    def register(self, name: str, aliases: tuple[str, ...] = ()) -> Callable[[type], type]:
        """Return a class decorator registering its class under ``name`` (and ``aliases``)."""

        def decorator(cls: type) -> type:
            for taken in (n for n in (name, *aliases) if n in self.names()):
                owner = self._classes[self._aliases.get(taken, taken)].__name__
                raise ValueError(f"{self.kind} '{taken}' is already registered by {owner}")
            if not (
                isinstance(cls, type) and self.base is not None and issubclass(cls, self.base)
            ):
                raise ValueError(
                    f"{self.kind} '{name}': {cls!r} is not a subclass of {self.base_name}"
                )
            if not dataclasses.is_dataclass(getattr(cls, 'config_cls', None)):
                raise ValueError(
                    f"{self.kind} '{name}': {cls.__name__}.config_cls must be a dataclass"
                )
            cls.name = name
            self._classes[name] = cls
            self._aliases.update((alias, name) for alias in aliases)
            return cls

        return decorator

    def names(self) -> list[str]:
        """Return the registered names and aliases, sorted."""
        return sorted([*self._classes, *self._aliases])

    def get(self, name: Any, where: str | None = None) -> type:
        """Return the class registered under ``name`` or an alias of it (errors name ``where``)."""
        if isinstance(name, str):
            name = self._aliases.get(name, name)
        if not isinstance(name, str) or name not in self._classes:
            where = where or f'{self.section}.{self.key}'
            raise ValueError(f'{where}: unknown {name!r}; allowed: {", ".join(self.names())}')
        return self._classes[name]

    def parse(self, mapping: Mapping[str, Any]) -> tuple[type, Any]:
        """Return (class, typed config) from a mapping holding ``key`` plus the config keys."""
        if not isinstance(mapping, Mapping):
            raise ValueError(f'{self.section}: expected a mapping, got {type(mapping).__name__}')
        if self.key not in mapping:
            raise ValueError(
                f'{self.section}.{self.key}: missing; allowed: {", ".join(self.names())}'
            )
        cls = self.get(mapping[self.key])
        rest = {k: v for k, v in mapping.items() if k != self.key}
        return cls, parse_dataclass(cls.config_cls, rest, self.section)


OPTIMIZERS = Registry('optimizer', 'optimizer_config', 'alg_name', 'RobotOptimizer')
PROBLEMS = Registry('problem', 'problem', 'problem_name', 'Problem')


def register_optimizer(name: str, aliases: tuple[str, ...] = ()) -> Callable[[type], type]:
    """
    Class decorator: register a ``RobotOptimizer`` subclass under ``name``.

    ``name`` (or one of ``aliases``) is the YAML ``alg_name``.
    """
    return OPTIMIZERS.register(name, aliases)


def register_problem(name: str) -> Callable[[type], type]:
    """
    Class decorator: register a ``Problem`` subclass under ``name``.

    ``name`` is the YAML ``problem_name``.
    """
    return PROBLEMS.register(name)


def _type_name(tp: Any) -> str:
    return getattr(tp, '__name__', str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """
    ``value`` checked against the annotation ``tp``.

    And mildly coerced: int -> float, '5e-3' -> float.
    """
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(
            f'{where}: expected {" or ".join(_type_name(a) for a in args)}, got {value!r}'
        )
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ValueError(
                f'{where}: {value!r} not allowed; allowed: {", ".join(map(str, allowed))}'
            )
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f'{where}: expected a list, got {value!r}')
        args = typing.get_args(tp)
        item = args[0] if args else Any
        out = [_coerce(v, item, f'{where}[{i}]') for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f'{where}: expected true or false, got {value!r}')
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f'{where}: expected an integer, got {value!r}')
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 5e-3 as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError(f'{where}: expected a number, got {value!r}')
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueError(f'{where}: expected a string, got {value!r}')
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return parse_dataclass(tp, value, where)
        raise ValueError(f'{where}: expected a mapping, got {value!r}')
    if tp in (dict, Mapping) or origin in (dict, Mapping):
        if isinstance(value, Mapping):
            return dict(value)
        raise ValueError(f'{where}: expected a mapping, got {value!r}')
    return value


def _describe(tp: Any) -> str:
    """Return what a value of annotation ``tp`` is, in words (for a missing key)."""
    words = {bool: 'true or false', int: 'an integer', float: 'a number', str: 'a string'}
    if tp in words:
        return words[tp]
    if dataclasses.is_dataclass(tp) or tp in (dict, Mapping) or typing.get_origin(tp) is dict:
        return 'a mapping'
    if typing.get_origin(tp) in (list, tuple) or tp in (list, tuple):
        return 'a list'
    return _type_name(tp)


def _check_range(value: Any, meta: Mapping[str, Any], where: str) -> None:
    if value is None:
        return
    if isinstance(value, (list, tuple)):  # the bounds hold for each item
        for i, item in enumerate(value):
            _check_range(item, meta, f'{where}[{i}]')
        return
    if 'choices' in meta and value not in meta['choices']:
        raise ValueError(
            f'{where}: {value!r} not allowed; allowed: {", ".join(map(str, meta["choices"]))}'
        )
    if 'gt' in meta and not value > meta['gt']:
        raise ValueError(f'{where}: {value!r} out of range; allowed: > {meta["gt"]}')
    if 'min' in meta and not value >= meta['min']:
        raise ValueError(f'{where}: {value!r} out of range; allowed: >= {meta["min"]}')
    if 'max' in meta and not value <= meta['max']:
        raise ValueError(f'{where}: {value!r} out of range; allowed: <= {meta["max"]}')


def parse_dataclass(cls: type[T], mapping: Mapping[str, Any], section: str) -> T:
    """
    Build a ``cls`` instance from ``mapping``, every key checked.

    Errors name ``section.key``.
    """
    if isinstance(mapping, cls):
        return mapping
    if not isinstance(mapping, Mapping):
        raise ValueError(f'{section}: expected a mapping, got {type(mapping).__name__}')
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    ignored = dict(getattr(cls, 'IGNORED_KEYS', {}))
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in mapping.items():
        where = f'{section}.{key}'
        if key in ignored:
            logger.info('%s: ignored (%s)', where, ignored[key])
            continue
        if key not in fields:
            allowed = sorted(set(fields) | set(ignored))
            raise ValueError(f'{where}: unknown key; allowed: {", ".join(allowed)}')
        value = _coerce(value, hints[key], where)
        _check_range(value, fields[key].metadata, where)
        kwargs[key] = value
    for key, f in fields.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and key not in kwargs:
            raise ValueError(f'{section}.{key}: missing; allowed: {_describe(hints[key])}')
    config = cls(**kwargs)
    validate = getattr(config, 'validate', None)
    if callable(validate):
        validate(section)
    return config


def parse_field(cls: type, key: str, value: Any, where: str) -> Any:
    """Return ``value`` checked (and mildly coerced) as the field ``key`` of ``cls``."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    value = _coerce(value, typing.get_type_hints(cls)[key], where)
    _check_range(value, fields[key].metadata, where)
    return value


def spec(default: Any, **meta: Any) -> Any:
    """
    Return a dataclass field with a default and allowed-value metadata.

    The metadata: choices, min, max, gt.
    """
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)
