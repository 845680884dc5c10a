"""The monitor's results on disk, in the experiment runner's layout (and with its plots)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dinno_ros.core.learning import plots
from dinno_ros.core.learning.experiment import output_dir_for, write_configs
from dinno_ros.core.swarm.spec import SwarmSpec
import torch


def write_swarm_results(
    spec: SwarmSpec, metrics: dict[str, Any], out_root: str | Path | None = None
) -> Path:
    """
    Write ``[results_dir]/[date]_[name]/``.

    With the config, ``[problem_name]_results.pt`` and the plots.
    """
    exp = spec.experiment
    out = output_dir_for(exp, out_root or spec.section.monitor.results_dir)
    out.mkdir(parents=True)
    write_configs(exp, out)
    metrics = {**metrics, 'alg_name': spec.pair.alg_name, 'source': 'ros_swarm'}
    torch.save(metrics, out / f'{spec.pair.problem_name}_results.pt')
    plots.plot_experiment({spec.pair.problem_name: metrics}, out, exp.problem)
    return out
