"""
Build a pair's problem and robots from the experiment config (nothing cached: build once, pass in).

Every robot comes from ``(config, pair_key, problem, robot_id)`` only, so a ROS process holding
one robot (:func:`build_agent`) builds bit-identical state to the offline runner holding all of
them (:func:`build_agents`).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from .agent import RobotAgent
from .experiment_config import ExperimentConfig
from .problems.base import Problem, robot_generator
from .registry import build_optimizer, problem_class

INIT_STREAM = 7  # robot_generator stream of the initial-weight spread

logger = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    """
    ``auto``: cuda when available, else cpu.

    ``cuda`` without a GPU falls back to cpu with a warning.
    """
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if device.startswith('cuda') and not torch.cuda.is_available():
        logger.warning('device %s requested but CUDA is not available; using cpu', device)
        return torch.device('cpu')
    return torch.device(device)


def build_problem(
    config: ExperimentConfig,
    pair_key: str,
    device: str | torch.device | None = None,
    data: Any = None,
) -> Problem:
    """
    Build the pair's ``Problem`` (data, world, base weights).

    ``data``: another pair's ``problem.data`` to share (the pairs of one config differ only in
    their batch sizes).
    """
    dev = resolve_device(str(device or config.device))
    cls = problem_class(config.problem)
    typed = config.pair_problem_config(pair_key)
    return cls(typed, num_nodes=config.num_nodes, seed=config.seed, device=dev, data=data)


def build_agent(
    config: ExperimentConfig, pair_key: str, problem: Problem, robot_id: int
) -> RobotAgent:
    """Robot ``robot_id`` of a pair: its local problem, optimizer and motion."""
    problem.check_robot(robot_id)
    local = problem.local_problem(robot_id)
    if config.init_spread > 0:
        spread_initial_weights(local.model, config.init_spread, problem.seed, robot_id)
    motion_of = getattr(problem, 'motion', None)
    motion = motion_of(robot_id) if callable(motion_of) else None
    if motion is not None and hasattr(local, 'add_observation'):
        local.add_observation(motion.observe(0))  # a first scan (DSGT's init_grads needs data)
    optimizer = build_optimizer(config.pair(pair_key).optimizer_config, local)
    optimizer.swarm_size = config.num_nodes
    return RobotAgent(robot_id, local, optimizer, motion)


def build_agents(config: ExperimentConfig, pair_key: str, problem: Problem) -> list[RobotAgent]:
    """All robots of a pair, robot i built exactly as :func:`build_agent` builds it alone."""
    return [build_agent(config, pair_key, problem, i) for i in range(config.num_nodes)]


def spread_initial_weights(model: torch.nn.Module, std: float, seed: int, robot_id: int) -> None:
    """
    Robot ``robot_id``'s own start.

    Base weights plus N(0, std^2) noise from its own seeded stream.
    """
    gen = robot_generator(seed, robot_id, stream=INIT_STREAM)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device) * std)
