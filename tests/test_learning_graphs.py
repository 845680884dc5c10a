"""Graph generators, disk graphs, Fiedler values and Metropolis weights."""

from __future__ import annotations

import math

from dinno_ros.core.learning.graphs import (
    build_graph,
    disk_graph,
    fiedler_value,
    GraphConfig,
    metropolis_weights,
)
from dinno_ros.core.learning.registry import parse_graph_config
import networkx as nx
import numpy as np
import pytest


def metropolis_matrix(graph: nx.Graph) -> np.ndarray:
    """Return the whole weight matrix that every node's local Metropolis weights make."""
    nodes = sorted(graph.nodes)
    index = {v: k for k, v in enumerate(nodes)}
    mat = np.zeros((len(nodes), len(nodes)))
    for v in nodes:
        w_ii, w = metropolis_weights(
            graph.degree[v], {u: graph.degree[u] for u in graph.neighbors(v)}
        )
        mat[index[v], index[v]] = w_ii
        for u, w_vu in w.items():
            mat[index[v], index[u]] = w_vu
    return mat


@pytest.mark.parametrize(
    'kind, n, edges',
    [('wheel', 6, 10), ('cycle', 7, 7), ('complete', 5, 10)],
)
def test_fixed_graph_types(kind: str, n: int, edges: int) -> None:
    graph = build_graph({'type': kind}, n)
    assert graph.number_of_nodes() == n and graph.number_of_edges() == edges
    assert nx.is_connected(graph)


def test_num_nodes_from_config_and_missing() -> None:
    assert build_graph({'type': 'cycle', 'num_nodes': 4}).number_of_nodes() == 4
    with pytest.raises(ValueError, match='graph.num_nodes'):
        build_graph({'type': 'cycle'})


def test_random_graph_is_connected_and_seeded() -> None:
    cfg = {'type': 'random', 'p': 0.3, 'gen_attempts': 200}
    a, b, c = (
        build_graph(cfg, 12, seed=3),
        build_graph(cfg, 12, seed=3),
        build_graph(cfg, 12, seed=4),
    )
    assert nx.is_connected(a)
    assert set(a.edges) == set(b.edges) and set(a.edges) != set(c.edges)


def test_random_graph_gives_up_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match='gen_attempts') as info:
        build_graph({'type': 'random', 'p': 0.01, 'gen_attempts': 3}, 20, seed=0)
    assert 'p=0.01' in str(info.value)


def test_disk_graph_from_positions() -> None:
    positions = np.array([[0.0, 0.0, 0.3], [1.0, 0.0, 0.0], [2.5, 0.0, 0.0], [10.0, 10.0, 1.0]])
    graph = build_graph({'type': 'disk', 'comm_radius': 1.5}, 4, positions=positions)
    assert set(graph.edges) == {(0, 1), (1, 2)}
    assert graph.number_of_nodes() == 4 and not nx.is_connected(graph)
    assert fiedler_value(graph) == pytest.approx(0.0, abs=1e-12)
    moved = positions.copy()
    moved[3, :2] = [3.0, 0.5]
    assert nx.is_connected(disk_graph(moved, 1.5))
    with pytest.raises(ValueError, match='positions'):
        build_graph({'type': 'disk', 'comm_radius': 1.0}, 4)
    with pytest.raises(ValueError, match='graph.comm_radius'):
        parse_graph_config({'type': 'disk'})


@pytest.mark.parametrize('n', [3, 5, 10, 17])
def test_fiedler_value_of_cycle(n: int) -> None:
    assert fiedler_value(nx.cycle_graph(n)) == pytest.approx(
        2 - 2 * math.cos(2 * math.pi / n), rel=1e-9
    )


def test_fiedler_value_of_complete_graph() -> None:
    assert fiedler_value(nx.complete_graph(6)) == pytest.approx(6.0)


@pytest.mark.parametrize(
    'graph',
    [
        nx.cycle_graph(6),
        nx.wheel_graph(7),
        nx.complete_graph(4),
        nx.star_graph(5),
        nx.path_graph(4),
        nx.gnp_random_graph(15, 0.3, seed=1),
        nx.empty_graph(3),
    ],
    ids=['cycle', 'wheel', 'complete', 'star', 'path', 'random', 'isolated'],
)
def test_metropolis_weights_doubly_stochastic(graph: nx.Graph) -> None:
    w = metropolis_matrix(graph)
    assert np.allclose(w.sum(axis=0), 1.0) and np.allclose(w.sum(axis=1), 1.0)
    assert np.allclose(w, w.T) and (w >= -1e-15).all()
    assert (np.diag(w) > 0).all()


def test_metropolis_weights_local_formula() -> None:
    w_ii, w = metropolis_weights(2, {5: 4, 7: 1})
    assert w == {5: pytest.approx(1 / 5), 7: pytest.approx(1 / 3)}
    assert w_ii == pytest.approx(1 - 1 / 5 - 1 / 3)
    assert metropolis_weights(0, {}) == (1.0, {})


def test_graph_config_errors_name_key_and_allowed() -> None:
    with pytest.raises(
        ValueError,
        match=r"graph.type: 'ring' not allowed; allowed: wheel, cycle, complete, random, disk",
    ):
        parse_graph_config({'type': 'ring'})
    with pytest.raises(ValueError, match=r'graph.p: 1.5 out of range; allowed: <= 1.0'):
        parse_graph_config({'type': 'random', 'p': 1.5})
    with pytest.raises(ValueError, match=r'graph.radius: unknown key; allowed: .*comm_radius'):
        parse_graph_config({'type': 'disk', 'radius': 2.0})
    assert isinstance(
        parse_graph_config({'num_nodes': 10, 'type': 'wheel', 'p': 0.2, 'gen_attempts': 5}),
        GraphConfig,
    )
