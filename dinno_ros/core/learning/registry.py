"""
Build optimizers, problems and graph configs by name, their configs validated first.

The name -> class tables and the config validator live in the leaf module
:mod:`dinno_ros.core.learning.schema`. This module imports the optimizer and problem packages,
whose imports register the built-in classes, so the tables are complete once it is imported.
"""

from __future__ import annotations

from typing import Any, Mapping

from . import optimizers, problems  # noqa: F401  (their imports register the built-in classes)
from .graphs import GraphConfig
from .schema import (
    GRAPH_TYPES,
    OPTIMIZERS,
    parse_dataclass,
    PROBLEMS,
    register_optimizer,
    register_problem,
    spec,
)

__all__ = [
    'build_optimizer',
    'graph_types',
    'optimizer_names',
    'parse_dataclass',
    'parse_graph_config',
    'parse_optimizer_config',
    'parse_problem_config',
    'problem_class',
    'problem_names',
    'register_optimizer',
    'register_problem',
    'spec',
]


def optimizer_names() -> list[str]:
    """Return the registered optimizer names (``alg_name``), sorted."""
    return OPTIMIZERS.names()


def parse_optimizer_config(mapping: Mapping[str, Any]) -> tuple[type, Any]:
    """
    Return (optimizer class, typed config) from ``{alg_name: ..., <keys>}``.

    Raises ValueError before anything runs.
    """
    return OPTIMIZERS.parse(mapping)


def build_optimizer(config: Mapping[str, Any], problem: Any) -> Any:
    """
    Build a ``RobotOptimizer`` for one robot's ``LocalProblem``.

    From an ``optimizer_config`` mapping.
    """
    cls, typed = parse_optimizer_config(config)
    return cls(typed, problem)


def problem_names() -> list[str]:
    """Return the registered problem names, sorted."""
    return PROBLEMS.names()


def problem_class(name: Any, where: str | None = None) -> type:
    """Return the ``Problem`` class registered as ``name`` (errors name ``where``)."""
    return PROBLEMS.get(name, where)


def parse_problem_config(mapping: Mapping[str, Any]) -> tuple[type, Any]:
    """Return (problem class, typed config) from ``{problem_name: ..., <keys>}``."""
    return PROBLEMS.parse(mapping)


def graph_types() -> list[str]:
    """Return the graph types, sorted."""
    return sorted(GRAPH_TYPES)


def parse_graph_config(mapping: Mapping[str, Any]) -> GraphConfig:
    """Parse a typed ``GraphConfig`` from the YAML ``graph:`` mapping."""
    return parse_dataclass(GraphConfig, mapping, 'graph')
