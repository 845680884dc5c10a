"""
Result plots (matplotlib, Agg).

Accuracy or validation loss and consensus error vs rounds; the learned map.

Every function reads only the research-format results dicts (``[problem_name]_results.pt``), so
plots can be redrawn from files:
``plot_experiment({name: torch.load(f, weights_only=True)}, out_dir, problem)``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

logger = logging.getLogger(__name__)


def _rounds(metrics: Mapping[str, Any], n: int) -> np.ndarray:
    """
    Return the rounds of the first ``n`` evaluations (1..n where the file does not say).

    A list of evaluated rounds shorter than ``n`` (a file written mid-evaluation) is continued
    with NaN, so every value still has its x.
    """
    rounds = metrics.get('evaluation_rounds')
    if rounds is None:
        return np.arange(1, n + 1, dtype=float)
    out = np.full(n, np.nan)
    known = np.asarray(list(rounds)[:n], dtype=float).reshape(-1)
    out[: len(known)] = known
    return out


def _row_stats(value: Any) -> tuple[float, float, float]:
    """Return (mean, min, max) of one evaluation's per-robot values; NaN when it has none."""
    row = torch.as_tensor(value, dtype=torch.float64).reshape(-1).numpy()
    if row.size == 0:
        return (np.nan, np.nan, np.nan)
    return (float(row.mean()), float(row.min()), float(row.max()))


def metric_band(
    metrics: Mapping[str, Any], name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """
    Return (rounds, mean, min, max) over robots of a per-robot metric; None when absent.

    The robots may differ between evaluations (a robot lost mid-run, or back): each row has the
    robots of its evaluation, any number of them (none: NaN, a gap in the curve).
    """
    values = metrics.get(name)
    if values is None or len(values) == 0:
        return None
    stats = np.array([_row_stats(v) for v in values], dtype=float).reshape(-1, 3)
    return _rounds(metrics, len(stats)), stats[:, 0], stats[:, 1], stats[:, 2]


def consensus_curve(metrics: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """
    Return (rounds, mean over robots of each robot's mean distance to the others).

    From the pairwise matrices, which may differ in size between evaluations (robots lost, or
    back); one robot alone, or none, has no distance: 0.
    """
    values = metrics.get('consensus_error')
    if values is None or len(values) == 0:
        return None
    means = []
    for mat in values:
        m = torch.as_tensor(mat, dtype=torch.float64)
        n = m.shape[0] if m.dim() else 0
        means.append(float(m.sum() / max(n * (n - 1), 1)) if m.numel() else 0.0)
    return _rounds(metrics, len(means)), np.asarray(means)


def save_figure(fig: Any, out_path: str | Path) -> Path:
    """Lay out, write and close a figure; return its path."""
    fig.tight_layout()
    out_path = Path(out_path)
    fig.savefig(out_path, dpi=120)
    plt.close(fig)
    return out_path


def plot_curves(
    results: Mapping[str, Mapping[str, Any]], out_path: str | Path, metric: str
) -> Path | None:
    """
    ``metric`` (mean over robots, min-max band) and consensus error vs rounds.

    One curve per pair.
    """
    fig, (ax_m, ax_c) = plt.subplots(1, 2, figsize=(11, 4))
    drawn = False
    for label, metrics in results.items():
        band = metric_band(metrics, metric)
        if band is not None:
            r, mean, lo, hi = band
            (line,) = ax_m.plot(r, mean, label=label)
            ax_m.fill_between(r, lo, hi, color=line.get_color(), alpha=0.2)
            drawn = True
        curve = consensus_curve(metrics)
        if curve is not None:
            ax_c.plot(*curve, label=label)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax_m.set(
        xlabel='round',
        ylabel=metric.replace('_', ' '),
        title=f'{metric.replace("_", " ")} (robot mean, min-max)',
    )
    ax_c.set(
        xlabel='round', ylabel='consensus error', title='consensus error (mean pairwise distance)'
    )
    if any(
        consensus_curve(m) is not None and (consensus_curve(m)[1] > 0).all()
        for m in results.values()
    ):
        ax_c.set_yscale('log')
    for ax in (ax_m, ax_c):
        ax.grid(alpha=0.3)
        ax.legend()
    return save_figure(fig, out_path)


def _learned_row(metrics: Mapping[str, Any], count: int, robot: int) -> tuple[int, int]:
    """
    Return (row, robot id) of robot ``robot``'s map among the last evaluation's ``count`` rows.

    ``evaluation_robots`` (in the monitor's results) lists each evaluation's robots: with a robot
    lost, the rows are those of the robots left. A robot absent from the last evaluation: the
    first robot's map.
    """
    robots = metrics.get('evaluation_robots')
    if robots and len(robots[-1]) == count:
        ids = [int(i) for i in robots[-1]]
        row = ids.index(robot) if robot in ids else 0
        return row, ids[row]
    row = min(robot, count - 1)
    return row, row


def plot_learned_maps(
    results: Mapping[str, Mapping[str, Any]], out_path: str | Path, robot: int = 0
) -> Path | None:
    """
    Plot the true map next to each pair's learned map.

    The learned map is robot ``robot``'s last ``mesh_grid_density`` (another robot's when
    ``robot`` was not in that evaluation: the panel says whose).
    """
    learned = {
        k: m
        for k, m in results.items()
        if m.get('mesh_grid_density') is not None
        and len(m['mesh_grid_density'])
        and torch.as_tensor(m['mesh_grid_density'][-1]).dim() == 3
        and len(m['mesh_grid_density'][-1])
    }
    if not learned:
        return None
    first = next(iter(learned.values()))
    panels = (
        [('true map', torch.as_tensor(first['true_mesh']).numpy())] if 'true_mesh' in first else []
    )
    for label, metrics in learned.items():
        mesh = torch.as_tensor(metrics['mesh_grid_density'][-1])
        row, robot_id = _learned_row(metrics, mesh.shape[0], robot)
        panels.append((f'{label} (robot {robot_id})', mesh[row].numpy()))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (title, image) in zip(axes[0], panels):
        ax.imshow(image, cmap='gray_r', vmin=0.0, vmax=1.0, interpolation='nearest')
        ax.set_title(title)
        ax.set_axis_off()
    return save_figure(fig, out_path)


def plot_against_megabytes(
    results: Mapping[str, Mapping[str, Any]], out_path: str | Path, metric: str
) -> Path | None:
    """``metric`` (robot mean) against the megabytes all robots have sent (``wire_bytes``)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    drawn = False
    for label, metrics in results.items():
        band, counts = metric_band(metrics, metric), metrics.get('wire_bytes')
        if band is None or not counts or len(counts) != len(band[1]):
            continue
        mb = np.array([float(torch.as_tensor(c).reshape(-1, 2)[:, 0].sum()) / 1e6 for c in counts])
        ax.plot(mb[1:], band[1][1:], marker='.', label=label)  # tag 0: nothing sent yet
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set(
        xlabel='megabytes sent by all robots',
        ylabel=metric.replace('_', ' '),
        xscale='log',
        title=f'{metric.replace("_", " ")} per megabyte on the wire',
    )
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, out_path)


def plot_experiment(
    results: Mapping[str, Mapping[str, Any]], out_dir: str | Path, problem: str
) -> list[Path]:
    """
    Every plot of an experiment into ``out_dir``.

    Curves, and the learned map for lidar problems.
    """
    out_dir = Path(out_dir)
    metric = 'top1_accuracy' if problem == 'mnist' else 'validation_loss'
    files = [plot_curves(results, out_dir / f'{metric}_consensus.png', metric)]
    files.append(plot_against_megabytes(results, out_dir / f'{metric}_per_megabyte.png', metric))
    if problem == 'density':
        files.append(plot_learned_maps(results, out_dir / 'learned_map.png'))
    files = [f for f in files if f is not None]
    for f in files:
        logger.info('plot %s', f)
    return files
