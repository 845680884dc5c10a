"""Learning problems (registered by name: mnist, density)."""

from __future__ import annotations

from . import density, mnist  # noqa: F401  (their imports register "density" and "mnist")
from .base import LocalProblem, Problem, robot_generator, robot_seed, TensorLocalProblem

__all__ = ['LocalProblem', 'Problem', 'TensorLocalProblem', 'robot_generator', 'robot_seed']
