"""
The research code's metrics of a (problem, optimizer) pair, for the offline runner and monitor.

Each metric is a function of one :class:`Evaluation` (the round, the robots' :class:`RobotView`s,
the round's graph) in :data:`METRICS`; both runners feed robot views (offline from the agents, in
the monitor from the received vectors), so the numbers are computed by the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
import logging
from typing import Any, Callable, Mapping, Sequence

import networkx as nx
import numpy as np
import torch

from .agent import RobotView
from .experiment_config import PairConfig
from .graphs import fiedler_value
from .metrics import consensus_error, MovingAverage
from .problems.base import Problem

logger = logging.getLogger(__name__)


@dataclass
class Metric:
    """One metric's value at one evaluation."""

    value: Any  # appended to the results list of its name
    summary: dict[str, float] = field(default_factory=dict)  # into the round's summary row
    line: str = ''  # the research code's log line fragment


@dataclass
class Evaluation:
    """What the metrics of one evaluation see."""

    evaluator: Evaluator
    tag: int  # rounds done: 0 = the initial models
    robots: Sequence[RobotView]
    graph: nx.Graph

    @cached_property
    def validation(self) -> list[dict[str, float]]:
        """Return the problem's validation metrics of every robot (computed once)."""
        return [self.evaluator.problem.evaluate(r.model) for r in self.robots]

    @cached_property
    def meshes(self) -> torch.Tensor:
        """Return every robot's learned map on the problem's mesh, [robots, rows, cols]."""
        problem = self.evaluator.problem
        return torch.stack([problem.mesh_grid_density(r.model) for r in self.robots])

    @property
    def at_end(self) -> bool:
        return self.tag == self.evaluator.rounds


def _range(values: torch.Tensor, fmt: str) -> str:
    return f'{float(values.min()):{fmt}} - {float(values.max()):{fmt}}'


def consensus(ev: Evaluation) -> Metric:
    ce = consensus_error([r.params for r in ev.robots])
    return Metric(
        ce['pairwise'],
        {
            'consensus_min': ce['min'],
            'consensus_max': ce['max'],
            'consensus_mean': float(ce['average'].mean()),
        },
        f'Consensus: {ce["min"]:.4f} - {ce["max"]:.4f}',
    )


def validation_metric(name: str, label: str, fmt: str) -> Callable[[Evaluation], Metric]:
    """Return the metric of the problem's validation value ``name``, one per robot."""

    def metric(ev: Evaluation) -> Metric:
        vals = torch.tensor([e[name] for e in ev.validation], dtype=torch.float64)
        return Metric(vals, {f'{name}_mean': float(vals.mean())}, f'{label}: {_range(vals, fmt)}')

    return metric


def forward_pass_count(ev: Evaluation) -> Metric:
    count = int(ev.robots[0].forward_passes) * int(ev.evaluator.pair.train_batch_size)
    return Metric(count, line=f'Num Forward: {count}')


def current_epoch(ev: Evaluation) -> Metric:
    epochs = torch.tensor([float(r.current_epoch) for r in ev.robots])
    return Metric(epochs, line=f'Ep Range: {int(epochs.min())} - {int(epochs.max())}')


def train_loss_moving_average(ev: Evaluation) -> Metric:
    averages = ev.evaluator.train_loss_averages
    tl = torch.tensor(
        [
            averages[r.robot_id].value if r.robot_id in averages else float('nan')
            for r in ev.robots
        ],
        dtype=torch.float64,
    )
    return Metric(tl, line=f'Train Loss MA: {_range(tl, ".4f")}')


def mesh_grid_density(ev: Evaluation) -> Metric | None:
    if not (ev.at_end or not ev.evaluator.pair.metrics_config.mesh_only_at_end):
        return None
    return Metric(ev.meshes)


def current_position(ev: Evaluation) -> Metric:
    pos = [r.position if r.position is not None else np.full(3, np.nan) for r in ev.robots]
    return Metric(torch.tensor(np.stack(pos), dtype=torch.float64))


def map_iou(ev: Evaluation) -> Metric:
    """Compare the learned maps with the true map where the lidars have looked, and everywhere."""
    evaluator = ev.evaluator
    seen = evaluator.coverage.mask
    values = torch.stack([evaluator.problem.map_iou(mesh.numpy(), seen) for mesh in ev.meshes])
    summary = {'map_miou_seen_mean': float(values[:, 0].mean())}
    summary['map_miou_mean'] = float(values[:, 3].mean())
    return Metric(values, summary, f'mIoU seen: {_range(values[:, 0], ".3f")}')


def wire_bytes(ev: Evaluation) -> Metric | None:
    """Return each robot's optimizer bytes so far, [robots, 2]: sent, received (as DDS)."""
    if any(r.bytes_sent is None for r in ev.robots):
        return None  # not counted where the views come from (the monitor)
    counts = torch.tensor([[r.bytes_sent, r.bytes_received] for r in ev.robots], dtype=torch.int64)
    megabytes = float(counts[:, 0].sum()) / 1e6
    return Metric(counts, {'megabytes_sent': megabytes}, f'MB sent: {megabytes:.3f}')


def current_graph(ev: Evaluation) -> Metric:
    edges = sorted((min(u, v), max(u, v)) for u, v in ev.graph.edges)
    return Metric(torch.tensor(edges, dtype=torch.int64).reshape(-1, 2))


METRICS: dict[str, Callable[[Evaluation], Metric | None]] = {
    'consensus_error': consensus,
    'validation_loss': validation_metric('validation_loss', 'Val Loss', '.4f'),
    'top1_accuracy': validation_metric('top1_accuracy', 'Top1', '.2f'),
    'validation_nll': validation_metric('validation_nll', 'Val NLL', '.4f'),
    'forward_pass_count': forward_pass_count,
    'current_epoch': current_epoch,
    'train_loss_moving_average': train_loss_moving_average,
    'mesh_grid_density': mesh_grid_density,
    'current_position': current_position,
    'current_graph': current_graph,
    'map_iou': map_iou,
    'wire_bytes': wire_bytes,
}


class Evaluator:
    """
    The research code's metrics of one pair, every ``evaluate_frequency`` rounds and at the end.

    As the research code: the models after t rounds for t = 0 (the initial models), f, 2f, ... and
    the last round's result (``evaluation_rounds`` lists the t evaluated).

    ``metrics`` maps each configured name to a list (one entry per evaluation) of plain tensors /
    numbers, as the research code's ``[problem_name]_results.pt``; ``evaluation_rounds`` lists the
    rounds evaluated; ``summary`` holds one row of summaries per evaluation.
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
        # the research code's tloss_decay weights the newest loss; MovingAverage's decay the old
        self._decay = min(max(1.0 - pair.metrics_config.tloss_decay, 0.0), 0.999999)
        self.train_loss_averages: dict[int, MovingAverage] = {}
        self.summary: list[dict[str, float]] = []
        # what the robots' lidars have seen so far (map_iou)
        self.coverage = problem.coverage() if 'map_iou' in self.names else None

    def due(self, tag: int) -> bool:
        """Return whether the models after ``tag`` rounds are evaluated."""
        return tag % self.pair.eval_every == 0 or tag == self.rounds

    def observe(self, losses: Mapping[int, float], poses: Sequence[np.ndarray] = ()) -> None:
        """Per-round bookkeeping: robot -> its training loss, and the robots' (x, y, yaw) poses."""
        for robot_id, loss in losses.items():
            self.train_loss_averages.setdefault(robot_id, MovingAverage(self._decay)).update(loss)
        if self.coverage is not None and len(poses):
            self.problem.add_coverage(self.coverage, np.stack(poses))

    def evaluate(self, tag: int, robots: Sequence[RobotView], graph: nx.Graph) -> dict[str, float]:
        """Append every configured metric of the models after ``tag`` rounds; return a summary."""
        ev = Evaluation(self, tag, robots, graph)
        row: dict[str, float] = {'round': float(tag), 'fiedler': fiedler_value(graph)}
        lines = []
        for name in self.names:
            metric = METRICS[name](ev)
            if metric is None:
                continue
            self.metrics[name].append(metric.value)
            row.update(metric.summary)
            if metric.line:
                lines.append(metric.line)
        self.metrics['evaluation_rounds'].append(tag)
        self.summary.append(row)
        if self.pair.verbose_evals:
            logger.info('%s round %d | %s |', self.label, tag, ' | '.join(lines))
        return row

    def results(self) -> dict[str, Any]:
        """Return the research code's results dict (plain tensors, lists, numbers)."""
        out = dict(self.metrics)
        extra = getattr(self.problem, 'results_extras', None)
        if callable(extra) and {'mesh_grid_density', 'map_iou'} & set(self.names):
            out.update(extra())
        return out
