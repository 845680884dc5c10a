"""
Communication graphs and Metropolis weights.

Graphs: wheel, cycle, complete, Erdos-Renyi random, Euclidean disk.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
import random
from typing import Any, ClassVar, Mapping

import networkx as nx
import numpy as np

from .schema import GRAPH_TYPES, parse_dataclass, spec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GraphConfig:
    """The YAML ``graph:`` section."""

    IGNORED_KEYS: ClassVar[dict[str, str]] = {}

    num_nodes: int | None = spec(None, min=1)  # robots (the caller may pass it separately)
    type: str = spec('wheel', choices=GRAPH_TYPES)  # noqa: A003 (the research code's YAML key)
    p: float = spec(0.3, min=0.0, max=1.0)  # edge probability of the random graph
    gen_attempts: int = spec(100, min=1)  # random graphs drawn until one is connected
    comm_radius: float | None = spec(None, gt=0.0)  # disk graph: link when distance <= comm_radius

    def validate(self, section: str = 'graph') -> None:
        if self.type == 'disk' and self.comm_radius is None:
            raise ValueError(
                f"{section}.comm_radius: required for type 'disk'; allowed: a number > 0"
            )


def _config(cfg: GraphConfig | Mapping[str, Any]) -> GraphConfig:
    return cfg if isinstance(cfg, GraphConfig) else parse_dataclass(GraphConfig, cfg, 'graph')


def build_graph(
    cfg: GraphConfig | Mapping[str, Any],
    num_nodes: int | None = None,
    seed: int = 0,
    positions: np.ndarray | None = None,
) -> nx.Graph:
    """
    Build the communication graph over nodes 0..n-1.

    ``disk``: from ``positions`` (n, >=2), rebuilt by the caller.
    """
    cfg = _config(cfg)
    n = int(num_nodes if num_nodes is not None else (cfg.num_nodes or 0))
    if n < 1:
        raise ValueError('graph.num_nodes: missing or < 1; allowed: an integer >= 1')
    if cfg.type == 'wheel':
        return nx.wheel_graph(n)
    if cfg.type == 'cycle':
        return nx.cycle_graph(n)
    if cfg.type == 'complete':
        return nx.complete_graph(n)
    if cfg.type == 'random':
        return _connected_random_graph(n, cfg.p, cfg.gen_attempts, seed)
    return disk_graph(positions, cfg.comm_radius, n)


def _connected_random_graph(n: int, p: float, attempts: int, seed: int) -> nx.Graph:
    rng = random.Random(seed)
    for _ in range(attempts):
        graph = nx.gnp_random_graph(n, p, seed=rng)
        if nx.is_connected(graph):
            return graph
    raise ValueError(
        f'graph.gen_attempts: no connected Erdos-Renyi graph with num_nodes={n}, p={p} in '
        f'{attempts} attempts; '
        'raise graph.p or graph.gen_attempts'
    )


def disk_graph(
    positions: np.ndarray | None, comm_radius: float | None, num_nodes: int | None = None
) -> nx.Graph:
    """
    Nodes linked when their (x, y) positions are within ``comm_radius``.

    The graph may be disconnected.
    """
    if positions is None:
        raise ValueError("graph.type 'disk' needs the robots' positions")
    if comm_radius is None:
        raise ValueError("graph.comm_radius: required for type 'disk'; allowed: a number > 0")
    xy = np.asarray(positions, dtype=float)[:, :2]
    n = len(xy) if num_nodes is None else int(num_nodes)
    if len(xy) != n:
        raise ValueError(f'graph: {len(xy)} positions for {n} nodes')
    graph = nx.empty_graph(n)
    dist = np.linalg.norm(xy[:, None, :] - xy[None, :, :], axis=-1)
    rows, cols = np.nonzero(np.triu(dist <= comm_radius, k=1))
    graph.add_edges_from(zip(rows.tolist(), cols.tolist()))
    return graph


def fiedler_value(graph: nx.Graph) -> float:
    """Algebraic connectivity: the second smallest Laplacian eigenvalue (0 when disconnected)."""
    n = graph.number_of_nodes()
    if n < 2:
        return 0.0
    lap = nx.laplacian_matrix(graph, nodelist=sorted(graph.nodes)).toarray().astype(float)
    return float(max(np.linalg.eigvalsh(lap)[1], 0.0))


def metropolis_weights(
    deg_i: int, neighbor_degrees: Mapping[int, int]
) -> tuple[float, dict[int, float]]:
    """Metropolis weights of robot i: W_ij = 1 / (max(deg_i, deg_j) + 1), W_ii = 1 - sum_j W_ij."""
    w = {j: 1.0 / (max(int(deg_i), int(d)) + 1.0) for j, d in neighbor_degrees.items()}
    return 1.0 - sum(w.values()), w
