"""
Registries of optimizers, problems and graphs, with typed dataclass configs.

The configs are validated before anything runs.

Config dataclass fields describe their allowed values in ``metadata``: ``choices`` (a tuple of
allowed values), ``min`` / ``max`` (inclusive bounds), ``gt`` (exclusive lower bound). Unknown
keys, wrong types and out-of-range values raise ``ValueError`` naming ``<section>.<key>`` and what
is allowed. Keys listed in a config class's ``IGNORED_KEYS`` (harmless seed keys such as
``profile``) are accepted and dropped.
"""

from __future__ import annotations

import dataclasses
import logging
import types
import typing
from typing import Any, Callable, Generic, Mapping, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar('T')


class Registry(Generic[T]):
    """
    Names -> classes of one base type.

    ``key`` is the config key holding the name (e.g. ``alg_name``).
    """

    def __init__(
        self, kind: str, base: Callable[[], type], section: str, key: str, builtins: str
    ) -> None:
        self.kind, self._base, self.section, self.key = kind, base, section, key
        self._builtins = builtins  # the module whose import registers the built-in classes
        self._loaded = False
        self._classes: dict[str, type] = {}

    @property
    def base(self) -> type:
        return self._base()

    def _load_builtins(self) -> None:
        if not self._loaded:
            self._loaded = True
            import importlib

            importlib.import_module(self._builtins)

    def register(self, name: str) -> Callable[[type], type]:
        def decorator(cls: type) -> type:
            if name in self._classes:
                raise ValueError(
                    f"{self.kind} '{name}' is already registered by {self._classes[name].__name__}"
                )
            if not (isinstance(cls, type) and issubclass(cls, self.base)):
                raise ValueError(
                    f"{self.kind} '{name}': {cls!r} is not a subclass of {self.base.__name__}"
                )
            if not dataclasses.is_dataclass(getattr(cls, 'config_cls', None)):
                raise ValueError(
                    f"{self.kind} '{name}': {cls.__name__}.config_cls must be a dataclass"
                )
            cls.name = name
            self._classes[name] = cls
            return cls

        return decorator

    def names(self) -> list[str]:
        self._load_builtins()
        return sorted(self._classes)

    def get(self, name: Any) -> type:
        self._load_builtins()
        if name not in self._classes:
            raise ValueError(
                f'{self.section}.{self.key}: unknown {name!r}; allowed: {", ".join(self.names())}'
            )
        return self._classes[name]

    def parse(self, mapping: Mapping[str, Any]) -> tuple[type, Any]:
        """(class, typed config) from a mapping holding ``key`` plus the class's config keys."""
        if not isinstance(mapping, Mapping):
            raise ValueError(f'{self.section}: expected a mapping, got {type(mapping).__name__}')
        if self.key not in mapping:
            raise ValueError(
                f'{self.section}.{self.key}: missing; allowed: {", ".join(self.names())}'
            )
        cls = self.get(mapping[self.key])
        rest = {k: v for k, v in mapping.items() if k != self.key}
        return cls, parse_dataclass(cls.config_cls, rest, self.section)


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


def _check_range(value: Any, meta: Mapping[str, Any], where: str) -> None:
    if value is None:
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
    ignored = set(getattr(cls, 'IGNORED_KEYS', ()))
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in mapping.items():
        where = f'{section}.{key}'
        if key in ignored:
            logger.debug('%s ignored (a seed key without effect here)', where)
            continue
        if key not in fields:
            allowed = sorted(set(fields) | ignored)
            raise ValueError(f'{where}: unknown key; allowed: {", ".join(allowed)}')
        value = _coerce(value, hints[key], where)
        _check_range(value, fields[key].metadata, where)
        kwargs[key] = value
    try:
        config = cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ValueError(f'{section}: {exc}') from exc
    validate = getattr(config, 'validate', None)
    if callable(validate):
        validate(section)
    return config


def spec(default: Any, **meta: Any) -> Any:
    """
    Return a dataclass field with a default and allowed-value metadata.

    The metadata: choices, min, max, gt.
    """
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# ---- the three registries -----------------------------------------------------------------------


def _optimizer_base() -> type:
    from .optimizers.base import RobotOptimizer

    return RobotOptimizer


def _problem_base() -> type:
    from .problems.base import Problem

    return Problem


_REGISTRIES: dict[str, Registry] = {
    'optimizer': Registry(
        'optimizer',
        _optimizer_base,
        'optimizer_config',
        'alg_name',
        'dinno_ros.core.learning.optimizers',
    ),
    'problem': Registry(
        'problem', _problem_base, 'problem', 'problem_name', 'dinno_ros.core.learning.problems'
    ),
}


def _registry(kind: str) -> Registry:
    return _REGISTRIES[kind]


def register_optimizer(name: str) -> Callable[[type], type]:
    """
    Class decorator: register a ``RobotOptimizer`` subclass under ``name``.

    ``name`` is the YAML ``alg_name``.
    """
    return _registry('optimizer').register(name)


def optimizer_names() -> list[str]:
    return _registry('optimizer').names()


def parse_optimizer_config(mapping: Mapping[str, Any]) -> tuple[type, Any]:
    """
    (optimizer class, typed config) from ``{alg_name: ..., <keys>}``.

    Raises ValueError before anything runs.
    """
    return _registry('optimizer').parse(mapping)


def build_optimizer(config: Mapping[str, Any], problem: Any) -> Any:
    """
    Build a ``RobotOptimizer`` for one robot's ``LocalProblem``.

    From an ``optimizer_config`` mapping.
    """
    cls, typed = parse_optimizer_config(config)
    return cls(typed, problem)


def register_problem(name: str) -> Callable[[type], type]:
    """
    Class decorator: register a ``Problem`` subclass under ``name``.

    ``name`` is the YAML ``problem_name``.
    """
    return _registry('problem').register(name)


def problem_names() -> list[str]:
    return _registry('problem').names()


def parse_problem_config(mapping: Mapping[str, Any]) -> tuple[type, Any]:
    """(problem class, typed config) from ``{problem_name: ..., <keys>}``."""
    return _registry('problem').parse(mapping)


def build_problem(
    config: Mapping[str, Any], num_nodes: int, seed: int = 0, device: str = 'cpu'
) -> Any:
    """Build a ``Problem`` from ``{problem_name: ..., <its config keys>}``."""
    cls, typed = parse_problem_config(config)
    return cls(typed, num_nodes=num_nodes, seed=seed, device=device)


def graph_types() -> list[str]:
    from .graphs import GRAPH_TYPES

    return sorted(GRAPH_TYPES)


def parse_graph_config(mapping: Mapping[str, Any]) -> Any:
    """Parse a typed ``GraphConfig`` from the YAML ``graph:`` mapping."""
    from .graphs import GraphConfig

    return parse_dataclass(GraphConfig, mapping, 'graph')
