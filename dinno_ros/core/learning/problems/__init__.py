"""Learning problems (registered by name: mnist, density)."""

from __future__ import annotations

import importlib

from . import mnist  # noqa: F401  (registers "mnist")
from .base import LocalProblem, Problem, robot_generator, robot_seed, TensorLocalProblem

try:  # the density (lidar) problem lives in its own module
    importlib.import_module(f'{__name__}.density')
except ModuleNotFoundError as exc:  # only while that module does not exist yet
    if exc.name != f'{__name__}.density':
        raise

__all__ = ['LocalProblem', 'Problem', 'TensorLocalProblem', 'robot_generator', 'robot_seed']
