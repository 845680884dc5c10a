"""
A loaded, validated swarm config: the experiment it runs plus the ``swarm:`` section.

Every process of a swarm (runner, launch file, robot nodes, monitor) calls ``load_swarm`` with the
same file and overrides, so they all agree on the robots, rounds and graph before anything starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dinno_ros.core.learning.experiment_config import (
    ExperimentConfig,
    PairConfig,
    parse_experiment,
    read_yaml,
)
from dinno_ros.core.learning.problems.world import load_world_map
from dinno_ros.core.swarm.config import parse_swarm_section, SwarmSection
from dinno_ros.share import resolve_config


@dataclass(frozen=True)
class SwarmSpec:
    path: Path  # the config file (absolute)
    experiment: ExperimentConfig  # with num_nodes and rounds overrides applied
    pair_key: str  # the problem_configs entry this swarm runs
    section: SwarmSection

    @property
    def pair(self) -> PairConfig:
        return self.experiment.pair(self.pair_key)

    @property
    def num_robots(self) -> int:
        return self.experiment.num_nodes

    @property
    def rounds(self) -> int:
        return self.pair.rounds

    @property
    def evaluate_frequency(self) -> int:
        return self.section.monitor.evaluate_frequency or self.pair.eval_every


def _read(path: Path) -> dict:
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ValueError(
            f"{path}: expected a mapping with 'experiment', 'problem_configs' "
            "and optionally 'swarm'"
        )
    return data


def load_swarm(
    config: str | Path, *, num_robots: int | None = None, rounds: int | None = None
) -> SwarmSpec:
    """
    Read and validate a swarm config; raise ValueError naming the key on any problem.

    Command-line overrides win over ``swarm.num_robots`` / ``swarm.rounds``, which win over the
    experiment.
    """
    for name, value in (('--num-robots', num_robots), ('--rounds', rounds)):
        if value is not None and value < 1:
            raise ValueError(f'{name}: {value} out of range; allowed: >= 1')
    path = resolve_config(config)
    data = _read(path)
    section = parse_swarm_section(data)
    raw = {k: v for k, v in data.items() if k != 'swarm'}
    n = num_robots or section.num_robots
    if n:
        exp = dict(raw.get('experiment') or {})
        exp['graph'] = {**(exp.get('graph') or {}), 'num_nodes': int(n)}
        raw['experiment'] = exp
    experiment = parse_experiment(raw, base_dir=path.parent, source=str(path))
    _check_files(experiment)
    for entry in section.late_messages:
        if max(entry[:2]) >= experiment.num_nodes:
            raise ValueError(
                f'swarm.late_messages: {entry!r} names a robot out of range; '
                f'allowed: 0..{experiment.num_nodes - 1}'
            )
    pair_key = section.pair or next(iter(experiment.pairs))
    if pair_key not in experiment.pairs:
        raise ValueError(
            f'swarm.pair: unknown pair {pair_key!r}; allowed: {", ".join(experiment.pairs)}'
        )
    r = rounds or section.rounds
    if r:
        experiment = experiment.with_rounds(r)
    return SwarmSpec(path=path, experiment=experiment, pair_key=pair_key, section=section)


def _check_files(experiment: ExperimentConfig) -> None:
    """Files the nodes would open (the map): fail now, naming the key, not in every node."""
    map_cfg = getattr(experiment.problem_config, 'map', None)
    path = getattr(map_cfg, 'path', None)
    if path is None:
        return
    if not Path(path).is_file():
        raise ValueError(f'experiment.map.path: {path} does not exist')
    try:
        load_world_map(map_cfg)  # the image too: missing, truncated or not an image
    except (OSError, ValueError, SyntaxError) as exc:
        raise ValueError(f'experiment.map.path: {path}: {exc}') from None


def default_swarm_id(spec: SwarmSpec) -> str:
    """Return the swarm id of a node started without one: the config's name and seed."""
    return f'{spec.experiment.name}-{spec.experiment.seed}'
