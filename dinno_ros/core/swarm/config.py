"""
The ``swarm:`` section of a swarm config: what only the running swarm needs.

A swarm config is an experiment YAML (``experiment:`` + ``problem_configs:``, read by
``dinno_ros.core.learning.experiment_config``) plus this optional section. Validated before any
node starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from dinno_ros.core.learning.schema import parse_dataclass, spec


@dataclass
class MonitorConfig:
    evaluate_frequency: int = spec(
        0, min=0
    )  # rounds between validation evaluations (0: the pair's own)
    results_dir: str = (
        'results/swarm'  # where the monitor writes results and plots (relative to the cwd)
    )
    writeout: bool = True  # write results and plots at the end
    # seconds of silence, beyond what a robot may wait for its neighbours (swarm.round_timeout;
    # swarm.startup_timeout before its round 0 is done), before it is reported lost
    lost_after: float = spec(15.0, gt=0)


@dataclass
class SwarmSection:
    pair: str = ''  # which problem_configs entry the swarm runs (default: the first)
    num_robots: int = spec(0, min=0)  # 0: experiment.graph.num_nodes
    rounds: int = spec(0, min=0)  # 0: the pair's optimizer_config.outer_iterations
    round_timeout: float = spec(
        10.0, gt=0
    )  # s to wait for a neighbour's round-k message before going on
    startup_timeout: float = spec(
        60.0, gt=0
    )  # s to wait for every neighbour to appear before round 0
    lost_after_rounds: int = spec(
        3, min=1
    )  # missed rounds after which a neighbour is no longer waited for
    publish_scans: bool = True  # publish sensor_msgs/LaserScan, paths and markers for RViz
    torch_threads: int = spec(1, min=1)  # torch threads per robot process
    # robots that share one process (one torch import, one DDS participant, one executor; each
    # still its own node in its own namespace, talking to all others over DDS only)
    robots_per_process: int = spec(1, min=1)
    # injected lateness: [sender, receiver, round] messages held back until the receiver's round
    # is over (the offline runner takes the same list); for tests and robustness studies
    late_messages: list = field(default_factory=list)
    # a received vector with an entry beyond this magnitude is dropped like one holding NaN
    max_abs_value: float = spec(1e6, gt=0)
    # times the runner (or launch file) restarts a robot whose process died; a restarted robot
    # rejoins the running swarm at its current round (0: a dead robot stays dead)
    respawn: int = spec(0, min=0)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)

    def validate(self, section: str = 'swarm') -> None:
        for entry in self.late_messages:
            ok = isinstance(entry, (list, tuple)) and len(entry) == 3
            if not ok or not all(isinstance(v, int) and v >= 0 for v in entry):
                raise ValueError(
                    f'{section}.late_messages: {entry!r} not allowed; allowed: '
                    '[sender, receiver, round] non-negative integers'
                )


def parse_swarm_section(data: Mapping) -> SwarmSection:
    """Return the typed ``swarm:`` section of a loaded YAML mapping (defaults when absent)."""
    return parse_dataclass(SwarmSection, data.get('swarm') or {}, 'swarm')
