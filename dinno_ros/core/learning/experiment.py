"""
The experiment runner (the research workflow): every (problem, optimizer) pair of one YAML.

All pairs start from the same base weights and the same data split / robot routes (both come from
(config, seed) only). With ``writeout`` the results go to
``[output_metadir]/[YYYY-mm-dd_HH-MM-SS]_[name]/``: a copy of the YAML,
``[problem_name]_results.pt`` per pair (plain tensors, dicts, lists and numbers:
``torch.load(path, weights_only=True)`` reads them) and the plots.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
import logging
from pathlib import Path
import shutil
import time
from typing import Any, Iterable, Sequence

import torch
from tqdm import tqdm

from . import plots
from .batched import check_runner, make_swarm
from .build import build_agents, build_problem, resolve_device
from .evaluator import Evaluator
from .experiment_config import ExperimentConfig, load_experiment
from .round import RoundGraph
from .simulation import run_rounds

logger = logging.getLogger(__name__)


@dataclass
class ExperimentResult:
    """
    What a run produced.

    Per pair label: the research code's metrics dict, the round records, files written.
    """

    config: ExperimentConfig
    device: str
    output_dir: Path | None
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # problem_name -> metrics
    records: dict[str, list[dict[str, Any]]] = field(
        default_factory=dict
    )  # pair key -> per-round records
    seconds: dict[str, float] = field(default_factory=dict)  # pair key -> wall time
    files: list[Path] = field(default_factory=list)


def output_dir_for(
    config: ExperimentConfig, metadir: str | Path | None = None, now: datetime | None = None
) -> Path:
    """
    Return ``[output_metadir]/[YYYY-mm-dd_HH-MM-SS]_[name]``.

    With a ``_2``, ``_3`` ... suffix if it exists.
    """
    base = Path(metadir if metadir is not None else config.output_metadir)
    stamp = (now or datetime.now()).strftime('%Y-%m-%d_%H-%M-%S')
    path = base / f'{stamp}_{config.name}'
    n = 2
    while path.exists():
        path = base / f'{stamp}_{config.name}_{n}'
        n += 1
    return path


def run_experiment(
    config: ExperimentConfig | str | Path,
    out_dir: str | Path | None = None,
    device: str | None = None,
    rounds: int | None = None,
    progress: bool = True,
    runner: str = 'auto',
) -> ExperimentResult:
    """
    Run every pair of ``config`` (a path or a loaded config).

    ``out_dir`` overrides ``output_metadir``; ``device`` (cpu | cuda | auto) and ``rounds``
    override the YAML's. Nothing is written when ``writeout`` is false. ``runner``: the offline
    runner (auto | batched | per_robot, see :func:`.batched.make_swarm`).
    """
    check_runner(runner)
    if not isinstance(config, ExperimentConfig):
        config = load_experiment(config)
    if device is not None:
        config = config.with_device(device)
    if rounds is not None:
        config = config.with_rounds(rounds)
    dev = resolve_device(config.device)
    logger.info('Device is set to %s', dev.type.upper())
    # data, world and route errors before any output; the pairs share the data
    first = build_problem(config, next(iter(config.pairs)), device=dev)
    check_routes(first)
    out = output_dir_for(config, out_dir) if config.writeout else None
    result = ExperimentResult(config, str(dev), out)
    if out is not None:
        out.mkdir(parents=True)
        result.files += write_configs(config, out)
    for key, pair in config.pairs.items():
        logger.info('-------------------------------------------------------')
        logger.info(
            'Running problem: %s (%s, %d rounds)', pair.problem_name, pair.alg_name, pair.rounds
        )
        start = time.perf_counter()
        models = out / f'{pair.problem_name}_models.pt' if out and pair.save_models else None
        metrics, records = run_pair(
            config, key, dev, progress, data=first.data, models=models, runner=runner
        )
        result.seconds[key] = time.perf_counter() - start
        result.results[pair.problem_name] = metrics
        result.records[key] = records
        if out is not None:
            path = out / f'{pair.problem_name}_results.pt'
            torch.save(metrics, path)
            result.files += [path] + ([models] if models else [])
    if out is not None:
        result.files += plots.plot_experiment(result.results, out, config.problem)
        logger.info('results in %s', out)
    return result


def check_routes(problem: Any) -> None:
    """Plan every robot's route now (a waypoint in a wall fails here, not mid-run)."""
    motion = getattr(problem, 'motion', None)
    if callable(motion):
        for i in range(problem.num_nodes):
            motion(i)


def run_pair(
    config: ExperimentConfig,
    key: str,
    device: torch.device | str = 'cpu',
    progress: bool = True,
    data: Any = None,
    late: Iterable[Sequence[int]] = (),
    lost_after_rounds: int = 3,
    models: Path | None = None,
    runner: str = 'auto',
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """
    Run one (problem, optimizer) pair: build its robots, run its rounds.

    ``data``: the problem data to share (see ``build_problem``); ``late``: (sender, receiver,
    round) messages that miss their round; ``models``: where to write every robot's final model
    (``{'robot_<i>': state_dict}``); ``runner``: auto | batched | per_robot (see
    :func:`.batched.make_swarm`). Returns (metrics, round records).
    """
    pair = config.pair(key)
    torch.manual_seed(config.seed)
    problem = build_problem(config, key, device=device, data=data)
    agents = build_agents(config, key, problem)
    graph = RoundGraph.from_config(config.graph, config.num_nodes, config.seed)
    swarm = make_swarm(agents, graph, late, lost_after_rounds, runner)
    evaluator = Evaluator(problem, pair, pair.rounds, label=pair.problem_name)
    with tqdm(total=pair.rounds, desc=pair.problem_name, disable=not progress, leave=False) as bar:
        records = run_rounds(swarm, pair.rounds, evaluator=evaluator, progress=bar)
    metrics = evaluator.results()
    metrics['round_train_loss'] = torch.tensor(
        [r['train_loss'] for r in records], dtype=torch.float64
    )
    metrics['fiedler'] = [row['fiedler'] for row in evaluator.summary]
    metrics['alg_name'] = pair.alg_name
    if models is not None:
        states = {f'robot_{a.robot_id}': a.model.state_dict() for a in agents}
        torch.save(states, models)
    return metrics, records


def write_configs(config: ExperimentConfig, out: Path) -> list[Path]:
    """
    Write a copy of the YAML as given, and the resolved config.

    The resolved config has the overrides and defaults applied.
    """
    files = []
    if config.source:
        src = Path(config.source)
        dst = out / src.name
        shutil.copyfile(src, dst)
        files.append(dst)
    resolved = out / 'experiment_resolved.yaml'
    config.dump(resolved)
    files.append(resolved)
    return files
