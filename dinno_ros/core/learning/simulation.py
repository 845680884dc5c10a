"""
The offline synchronous round loop over :class:`RobotAgent`s.

And the builders shared with the ROS nodes.

Every per-robot object comes from ``(config, pair_key, seed, robot_id)`` only, so a ROS process
holding one robot (:func:`build_agent`) builds bit-identical state to this loop holding all of them
(:func:`build_agents`). One round k, as each ROS robot node does it::

    obs = [a.begin_round(k) for a in agents]      # drive, scan, feed the local datasets
    graph = graph_builder(k, agents)              # static, or the disk graph of the current
                                                  # positions
    out = [a.outgoing() for a in agents]          # every robot publishes first ...
    # ... then every robot steps:
    a_i.finish_round(k, {j: NeighborMessage(out[j], deg_j) for j in N_i})
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping, Sequence

import networkx as nx
import numpy as np
import torch

from .agent import RobotAgent
from .experiment_config import ExperimentConfig, PairConfig
from .graphs import build_graph, disk_graph, fiedler_value
from .metrics import consensus_error, MovingAverage
from .optimizers.base import NeighborMessage
from .problems.base import Problem, robot_generator
from .registry import build_optimizer, problem_class

INIT_STREAM = 7  # robot_generator stream of the initial-weight spread

logger = logging.getLogger(__name__)

GraphBuilder = Callable[[int, Sequence[RobotAgent]], nx.Graph]
_PROBLEMS: dict[
    tuple, Problem
] = {}  # one Problem per (config, pair, seed, device) in this process


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
    seed: int | None = None,
    device: str | torch.device | None = None,
) -> Problem:
    """Build the pair's ``Problem`` (data, world, base weights), cached per process."""
    seed = config.seed if seed is None else int(seed)
    dev = resolve_device(str(device or config.device))
    typed = config.pair_problem_config(pair_key)
    key = (config.problem, repr(typed), config.num_nodes, seed, str(dev))
    if key not in _PROBLEMS:
        cls = problem_class(config.problem)
        _PROBLEMS[key] = cls(typed, num_nodes=config.num_nodes, seed=seed, device=dev)
    return _PROBLEMS[key]


def clear_problem_cache() -> None:
    _PROBLEMS.clear()


def build_agent(
    config: ExperimentConfig,
    pair_key: str,
    seed: int | None = None,
    robot_id: int = 0,
    device: str | torch.device | None = None,
) -> RobotAgent:
    """
    Robot ``robot_id`` of a pair.

    Its local problem (base weights, own data stream), optimizer, motion.
    """
    problem = build_problem(config, pair_key, seed, device)
    problem.check_robot(robot_id)
    local = problem.local_problem(robot_id)
    if config.init_spread > 0:
        spread_initial_weights(local.model, config.init_spread, problem.seed, robot_id)
    motion_of = getattr(problem, 'motion', None)
    motion = motion_of(robot_id) if callable(motion_of) else None
    if motion is not None and hasattr(local, 'add_observation'):
        local.add_observation(
            motion.observe(0)
        )  # a first scan at the start pose (DSGT's init_grads needs data)
    optimizer = build_optimizer(config.pair(pair_key).optimizer_config, local)
    return RobotAgent(robot_id, local, optimizer, motion)


def spread_initial_weights(model: torch.nn.Module, std: float, seed: int, robot_id: int) -> None:
    """
    Robot ``robot_id``'s own start.

    Base weights plus N(0, std^2) noise from its own seeded stream.
    """
    gen = robot_generator(seed, robot_id, stream=INIT_STREAM)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device) * std)


def build_agents(
    config: ExperimentConfig,
    pair_key: str,
    seed: int | None = None,
    device: str | torch.device | None = None,
) -> list[RobotAgent]:
    """All robots of a pair, robot i built exactly as :func:`build_agent` builds it alone."""
    return [build_agent(config, pair_key, seed, i, device) for i in range(config.num_nodes)]


def graph_builder(config: ExperimentConfig, seed: int | None = None) -> GraphBuilder:
    """
    Return a builder of the round's communication graph.

    Fixed for wheel/cycle/complete/random, rebuilt from positions for disk.
    """
    seed = config.seed if seed is None else int(seed)
    if config.graph.type == 'disk':
        radius = config.graph.comm_radius

        def disk(k: int, agents: Sequence[RobotAgent]) -> nx.Graph:
            positions = np.stack(
                [a.position[:2] if a.position is not None else np.zeros(2) for a in agents]
            )
            return disk_graph(positions, radius)

        return disk
    graph = build_graph(config.graph, config.num_nodes, seed)
    logger.info(
        'graph %s: %d nodes, %d edges, Fiedler value %.4f',
        config.graph.type,
        graph.number_of_nodes(),
        graph.number_of_edges(),
        fiedler_value(graph),
    )
    return lambda k, agents: graph


def exchange(
    agents: Sequence[RobotAgent], graph: nx.Graph, round_k: int
) -> list[dict[str, float]]:
    """
    One synchronous exchange and step.

    All robots publish, then every robot steps with round-k messages.
    """
    out = {a.robot_id: a.outgoing() for a in agents}
    degree = {int(v): int(d) for v, d in graph.degree}
    infos = []
    for a in agents:
        msgs = {
            int(j): NeighborMessage(out[int(j)], degree[int(j)])
            for j in graph.neighbors(a.robot_id)
        }
        infos.append(a.finish_round(round_k, msgs))
    return infos


class Evaluator:
    """
    The seed's metrics of one pair.

    Evaluated every ``evaluate_frequency`` rounds and at the last round.

    ``metrics`` maps each configured name to a list (one entry per evaluation) of plain tensors /
    numbers, as the seed's ``[problem_name]_results.pt``; ``evaluation_rounds`` lists the rounds
    evaluated.
    """

    def __init__(
        self, problem: Problem, pair: PairConfig, rounds: int, label: str | None = None
    ) -> None:
        self.problem = problem
        self.pair = pair
        self.rounds = int(rounds)
        self.label = label or pair.problem_name
        self.names = list(pair.metrics)
        self.metrics: dict[str, Any] = {name: [] for name in self.names}
        self.metrics['evaluation_rounds'] = []
        # the seed's tloss_decay weights the newest loss; MovingAverage's decay weights the old
        # value
        decay = 1.0 - pair.metrics_config.tloss_decay
        self._tloss: dict[int, MovingAverage] = {}
        self._decay = min(max(decay, 0.0), 0.999999)
        self.summary: list[
            dict[str, float]
        ] = []  # per evaluation: round, consensus / val summaries

    def due(self, k: int) -> bool:
        return (k + 1) % self.pair.eval_every == 0 or k == self.rounds - 1

    def observe(
        self, k: int, agents: Sequence[RobotAgent], infos: Sequence[Mapping[str, float]]
    ) -> None:
        """Per-round bookkeeping (the training-loss moving average)."""
        for a, info in zip(agents, infos):
            if 'train_loss' in info:
                self._tloss.setdefault(a.robot_id, MovingAverage(self._decay)).update(
                    info['train_loss']
                )

    def evaluate(self, k: int, agents: Sequence[RobotAgent], graph: nx.Graph) -> dict[str, float]:
        """
        Append every configured metric; log the seed's line when ``verbose_evals``.

        Returns a summary.
        """
        at_end = k == self.rounds - 1
        row: dict[str, float] = {'round': float(k + 1)}
        parts = ['| ']
        evals = None
        if {'validation_loss', 'top1_accuracy'} & set(self.names):
            evals = [self.problem.evaluate(a.model) for a in agents]
        for name in self.names:
            if name == 'consensus_error':
                ce = consensus_error([a.params() for a in agents])
                self.metrics[name].append(ce['pairwise'])
                row['consensus_min'], row['consensus_max'] = ce['min'], ce['max']
                row['consensus_mean'] = float(ce['average'].mean())
                parts.append(f'Consensus: {ce["min"]:.4f} - {ce["max"]:.4f} | ')
            elif name in ('validation_loss', 'top1_accuracy'):
                vals = torch.tensor([e[name] for e in evals], dtype=torch.float64)
                self.metrics[name].append(vals)
                row[f'{name}_mean'] = float(vals.mean())
                label = 'Val Loss' if name == 'validation_loss' else 'Top1'
                fmt = '.4f' if name == 'validation_loss' else '.2f'
                parts.append(f'{label}: {float(vals.min()):{fmt}} - {float(vals.max()):{fmt}} | ')
            elif name == 'forward_pass_count':
                count = int(agents[0].optimizer.forward_passes) * int(self.pair.train_batch_size)
                self.metrics[name].append(count)
                parts.append(f'Num Forward: {count} | ')
            elif name == 'current_epoch':
                ep = torch.tensor(
                    [float(getattr(a.problem, 'current_epoch', 0.0)) for a in agents]
                )
                self.metrics[name].append(ep)
                parts.append(f'Ep Range: {int(ep.min())} - {int(ep.max())} | ')
            elif name == 'train_loss_moving_average':
                tl = torch.tensor(
                    [
                        self._tloss[a.robot_id].value
                        if a.robot_id in self._tloss
                        else float('nan')
                        for a in agents
                    ],
                    dtype=torch.float64,
                )
                self.metrics[name].append(tl)
                parts.append(f'Train Loss MA: {float(tl.min()):.4f} - {float(tl.max()):.4f} | ')
            elif name == 'mesh_grid_density':
                if at_end or not self.pair.metrics_config.mesh_only_at_end:
                    self.metrics[name].append(
                        torch.stack([self.problem.mesh_grid_density(a.model) for a in agents])
                    )
            elif name == 'current_position':
                pos = [
                    a.position if a.position is not None else np.full(3, np.nan) for a in agents
                ]
                self.metrics[name].append(torch.tensor(np.stack(pos), dtype=torch.float64))
            elif name == 'current_graph':
                edges = sorted((min(u, v), max(u, v)) for u, v in graph.edges)
                self.metrics[name].append(torch.tensor(edges, dtype=torch.int64).reshape(-1, 2))
        self.metrics['evaluation_rounds'].append(k + 1)
        self.summary.append(row)
        if self.pair.verbose_evals:
            logger.info('%s round %d %s', self.label, k + 1, ''.join(parts).rstrip())
        return row

    def results(self) -> dict[str, Any]:
        """Return the seed's results dict (plain tensors, lists, numbers)."""
        out = dict(self.metrics)
        extra = getattr(self.problem, 'results_extras', None)
        if callable(extra) and 'mesh_grid_density' in self.names:
            out.update(extra())
        return out


def run_rounds(
    agents: Sequence[RobotAgent],
    graph_builder: GraphBuilder,
    rounds: int,
    evaluator: Evaluator | None = None,
    callback: Callable[[int, dict[str, Any]], None] | None = None,
    start: int = 0,
    progress: Any = None,
) -> list[dict[str, Any]]:
    """
    Run rounds ``start .. start+rounds-1``; returns one record per round.

    A record holds ``round``, ``train_loss`` (per robot), ``forward_passes``, ``num_edges``,
    ``fiedler`` (only on evaluation rounds, it costs an eigendecomposition) and the evaluator's
    summary when it evaluated. ``progress`` is an optional tqdm-like object updated once per round.
    """
    records = []
    for k in range(start, start + rounds):
        for a in agents:
            a.begin_round(k)
        graph = graph_builder(k, agents)
        infos = exchange(agents, graph, k)
        record: dict[str, Any] = {
            'round': k,
            'train_loss': [float(i.get('train_loss', float('nan'))) for i in infos],
            'forward_passes': [int(a.optimizer.forward_passes) for a in agents],
            'num_edges': graph.number_of_edges(),
        }
        if evaluator is not None:
            evaluator.observe(k, agents, infos)
            if evaluator.due(k):
                record['fiedler'] = fiedler_value(graph)
                record['eval'] = evaluator.evaluate(k, agents, graph)
        if callback is not None:
            callback(k, record)
        if progress is not None:
            progress.update(1)
            if 'eval' in record:
                progress.set_postfix(
                    {k2: f'{v:.4g}' for k2, v in record['eval'].items() if k2 != 'round'},
                    refresh=False,
                )
        records.append(record)
    return records
