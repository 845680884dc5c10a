"""
The experiment YAML (the research code's format), typed and validated before anything runs.

The format is the research code's, key for key::

    experiment:
      name, data_dir, output_metadir, writeout, data_split_type, loss,
      graph: {num_nodes, type, p, gen_attempts[, comm_radius]},
      model: {...}                          # the problem's network
      seed, device (cpu | cuda | auto)      # additions (the research code's use_cuda works too)
      problem: mnist | density              # optional; default density when a map is given,
                                            # else mnist
      map, lidar, routes, dataset, validation, mesh_stride   # lidar (density) experiments only
    problem_configs:
      <key>: {problem_name, train_batch_size, val_batch_size, evaluate_frequency, verbose_evals,
              metrics: [...], metrics_config: {...}, optimizer_config: {alg_name, ...}}

``problem_name`` labels a (problem, optimizer) pair as in the research code: results go to
``[problem_name]_results.pt``. Which learning problem runs is the experiment's ``problem``. Every
error is a ``ValueError`` naming the full key path
(``problem_configs.dinno.optimizer_config.rho_init``) and, for enumerations, the allowed values.
Relative paths (``data_dir``, ``map.path``) resolve against the YAML's folder, then the package's
share directory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
import logging
from pathlib import Path
from typing import Any, ClassVar, Mapping

from dinno_ros.share import share_dir
import yaml

from .graphs import GraphConfig
from .metrics import METRIC_NAMES
from .registry import parse_optimizer_config, problem_class
from .schema import GRAPH_TYPES, parse_dataclass, parse_field, spec

logger = logging.getLogger(__name__)

DEVICES = ('cpu', 'cuda', 'auto')
PAIR_PROBLEM_KEYS = (
    'train_batch_size',
    'val_batch_size',
)  # problem config keys that live in each pair
PATH_KEYS = (
    ('data_dir',),
    ('map', 'path'),
)  # problem config paths resolved against the YAML's folder
MUST_EXIST = (('map', 'path'),)  # paths checked at load time (data_dir may be downloaded into)
PROBLEM_METRICS = {  # metrics only one problem can evaluate
    'top1_accuracy': ('mnist',),
    'mesh_grid_density': ('density',),
    'current_position': ('density',),
    'map_iou': ('density',),
    'validation_nll': ('mnist',),
}


@dataclass(frozen=True)
class MetricsConfig:
    """A pair's ``metrics_config`` (the later research code's home of evaluate_frequency)."""

    evaluate_frequency: int | None = spec(None, min=1)  # overrides the pair's evaluate_frequency
    tloss_decay: float = spec(
        0.2, gt=0.0, max=1.0
    )  # weight of the newest loss in the moving average
    mesh_only_at_end: bool = True  # mesh_grid_density only at the last evaluation


@dataclass(frozen=True)
class PairConfig:
    """One (problem, optimizer) pair of ``problem_configs``."""

    IGNORED_KEYS: ClassVar[dict[str, str]] = {}

    problem_name: str  # the pair's label: results go to [problem_name]_results.pt
    optimizer_config: dict  # {alg_name, ...}: validated by the optimizer registry
    train_batch_size: int = spec(64, min=1)
    val_batch_size: int = spec(1024, min=1)
    evaluate_frequency: int = spec(20, min=1)  # rounds between evaluations
    verbose_evals: bool = True  # log each evaluation as the research code printed it
    metrics: list[str] = spec(
        ['forward_pass_count', 'validation_loss', 'consensus_error'], choices=METRIC_NAMES
    )
    metrics_config: MetricsConfig = field(default_factory=MetricsConfig)
    save_models: bool = False  # write each robot's final model: [problem_name]_models.pt
    # the research code's per-pair graph switch (a pixel radius): say it in experiment.graph
    dynamic_graph: bool = False
    comm_radius: float | None = None

    def validate(self, section: str) -> None:
        if self.dynamic_graph or self.comm_radius is not None:
            key = 'dynamic_graph' if self.dynamic_graph else 'comm_radius'
            raise ValueError(
                f'{section}.{key}: a per-pair graph (with a radius in pixels) is not supported; '
                'allowed: experiment.graph: {type: disk, comm_radius: <metres>} for every pair'
            )

    @property
    def alg_name(self) -> str:
        return str(self.optimizer_config['alg_name'])

    @property
    def rounds(self) -> int:
        """Return the pair's rounds: the optimizer's ``outer_iterations``."""
        return int(self.optimizer_config.get('outer_iterations', 0))

    @property
    def eval_every(self) -> int:
        return self.metrics_config.evaluate_frequency or self.evaluate_frequency


@dataclass(frozen=True)
class ExperimentConfig:
    """
    A whole experiment.

    The common ``experiment:`` keys, the problem's typed config and the pairs.
    """

    name: str
    problem: str  # registered problem: mnist | density
    problem_config: (
        Any  # the problem's typed config (its experiment keys; pair batch sizes at their defaults)
    )
    graph: GraphConfig
    pairs: dict[str, PairConfig]
    output_metadir: str = 'results'
    writeout: bool = True
    seed: int = 0
    device: str = spec('auto', choices=DEVICES)
    init_spread: float = (
        0.0  # std of per-robot noise added to the base weights (0: all robots start equal)
    )
    source: str | None = field(default=None, compare=False)  # the YAML file it came from

    @property
    def num_nodes(self) -> int:
        return int(self.graph.num_nodes)

    def pair(self, key: str) -> PairConfig:
        if key not in self.pairs:
            raise ValueError(
                f'problem_configs: unknown pair {key!r}; allowed: {", ".join(self.pairs)}'
            )
        return self.pairs[key]

    def pair_problem_config(self, key: str) -> Any:
        """Return the problem's typed config for one pair (its batch sizes filled in)."""
        pair = self.pair(key)
        return dataclasses.replace(
            self.problem_config,
            **{k: getattr(pair, k) for k in PAIR_PROBLEM_KEYS if hasattr(self.problem_config, k)},
        )

    def with_rounds(self, rounds: int) -> 'ExperimentConfig':
        """Return a copy whose pairs all run ``rounds`` rounds (``outer_iterations``)."""
        if int(rounds) < 1:
            raise ValueError(f'--rounds: {rounds} out of range; allowed: >= 1')
        pairs = {
            k: dataclasses.replace(
                p, optimizer_config={**p.optimizer_config, 'outer_iterations': int(rounds)}
            )
            for k, p in self.pairs.items()
        }
        return dataclasses.replace(self, pairs=pairs)

    def with_device(self, device: str) -> 'ExperimentConfig':
        """Return a copy running on ``device`` (cpu | cuda | auto)."""
        device = parse_field(ExperimentConfig, 'device', device, 'experiment.device')
        return dataclasses.replace(self, device=device)

    def to_dict(self) -> dict:
        """Return the YAML mapping (seed layout) of this config."""
        exp: dict[str, Any] = {
            'name': self.name,
            'output_metadir': self.output_metadir,
            'writeout': self.writeout,
            'seed': self.seed,
            'device': self.device,
            'problem': self.problem,
        }
        if self.init_spread:
            exp['init_spread'] = self.init_spread
        prob = _plain(dataclasses.asdict(self.problem_config))
        for key in PAIR_PROBLEM_KEYS:
            prob.pop(key, None)
        exp.update(prob)
        exp['graph'] = {
            k: v for k, v in _plain(dataclasses.asdict(self.graph)).items() if v is not None
        }
        pairs = {}
        for key, pair in self.pairs.items():
            d = _plain(dataclasses.asdict(pair))
            d['metrics_config'] = {k: v for k, v in d['metrics_config'].items() if v is not None}
            pairs[key] = d
        return {'experiment': exp, 'problem_configs': pairs}

    def dump(self, path: str | Path | None = None) -> str:
        """YAML text of :meth:`to_dict`; also written to ``path`` when given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)
        if path is not None:
            Path(path).write_text(text, encoding='utf-8')
        return text


def read_yaml(path: Path) -> Any:
    """Return a YAML file's data; ``ValueError`` in one line (where, what) when it is not YAML."""
    try:
        return yaml.safe_load(path.read_text(encoding='utf-8'))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f' at line {mark.line + 1}, column {mark.column + 1}' if mark else ''
        raise ValueError(f'{path}: not valid YAML: {exc.problem or exc.context}{where}') from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValueError(f'{path}: not valid YAML: {str(exc).splitlines()[0]}') from None


def load_experiment(path: str | Path) -> ExperimentConfig:
    """
    Read and validate an experiment YAML (``ValueError`` naming the key on any problem).

    A swarm config's ``swarm:`` section is ignored (logged): the experiment runs offline.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'experiment config {path} does not exist')
    raw = read_yaml(path)
    if isinstance(raw, Mapping) and 'swarm' in raw:
        logger.info('%s: the swarm: section is ignored offline', path)
        raw = {k: v for k, v in raw.items() if k != 'swarm'}
    return parse_experiment(raw, base_dir=path.resolve().parent, source=str(path.resolve()))


def parse_experiment(
    raw: Any, base_dir: str | Path | None = None, source: str | None = None
) -> ExperimentConfig:
    """
    Build an :class:`ExperimentConfig` from the YAML mapping.

    Relative paths resolve against ``base_dir``.
    """
    if not isinstance(raw, Mapping):
        raise ValueError(
            "experiment config: expected a mapping with 'experiment' and 'problem_configs', got "
            f'{raw!r}'
        )
    _check_keys(
        raw, ('experiment', 'problem_configs'), '', required=('experiment', 'problem_configs')
    )
    exp = raw['experiment']
    if not isinstance(exp, Mapping):
        raise ValueError(f'experiment: expected a mapping, got {exp!r}')
    exp = dict(exp)
    common = _parse_common(exp)
    problem = common.problem
    problem_cls = problem_class(problem, 'experiment.problem')
    known = set(problem_cls.config_keys()) - set(PAIR_PROBLEM_KEYS)
    allowed = sorted(known | set(COMMON_KEYS))
    for key in exp:
        if key not in COMMON_KEYS and key not in known:
            raise ValueError(
                f'experiment.{key}: unknown key for problem {problem!r}; allowed: '
                f'{", ".join(allowed)}'
            )
    prob_keys = {k: v for k, v in exp.items() if k in known}
    prob_keys = _resolve_paths(prob_keys, Path(base_dir) if base_dir else Path.cwd())
    problem_config = _rename_errors(
        lambda: problem_cls.config_from_sections(prob_keys), 'problem', 'experiment'
    )
    pairs = _parse_pairs(raw['problem_configs'], problem)
    _check_fixed_graph(pairs, common.graph)
    config = ExperimentConfig(
        name=common.name,
        problem=problem,
        problem_config=problem_config,
        graph=common.graph,
        pairs=pairs,
        output_metadir=common.output_metadir,
        writeout=common.writeout,
        seed=common.seed,
        init_spread=common.init_spread,
        device=common.device,
        source=source,
    )
    for key in pairs:  # the batch sizes through the problem's own validation
        _rename_errors(
            lambda: parse_dataclass(
                problem_cls.config_cls, _plain_shallow(config.pair_problem_config(key)), 'problem'
            ),
            'problem',
            f'problem_configs.{key}',
        )
    return config


@dataclass(frozen=True)
class CommonConfig:
    """The ``experiment:`` keys every problem shares (the problem's own keys are its config)."""

    name: str
    graph: GraphConfig
    output_metadir: str = 'results'
    writeout: bool = True
    seed: int = 0
    device: str | None = spec(None, choices=DEVICES)  # None: from use_cuda
    use_cuda: bool | None = None  # the research code's key: true -> device auto, false -> cpu
    problem: str | None = None  # None: density when a map is given, else mnist
    init_spread: float = spec(0.0, min=0.0)

    def validate(self, section: str = 'experiment') -> None:
        if self.graph.num_nodes is None:
            raise ValueError(f'{section}.graph.num_nodes: missing; allowed: an integer >= 1')


COMMON_KEYS = tuple(f.name for f in dataclasses.fields(CommonConfig))


def _parse_common(exp: Mapping[str, Any]) -> CommonConfig:
    common = parse_dataclass(
        CommonConfig, {k: v for k, v in exp.items() if k in COMMON_KEYS}, 'experiment'
    )
    device = common.device or ('auto' if common.use_cuda in (None, True) else 'cpu')
    problem = common.problem or ('density' if 'map' in exp else 'mnist')
    return dataclasses.replace(common, device=device, problem=problem)


def _check_fixed_graph(pairs: Mapping[str, PairConfig], graph: GraphConfig) -> None:
    """Refuse an optimizer that needs a fixed graph (``FIXED_GRAPH``) on the disk graph."""
    if graph.type != 'disk':
        return
    for key, pair in pairs.items():
        cls, _ = parse_optimizer_config(pair.optimizer_config)
        if getattr(cls.config_cls, 'FIXED_GRAPH', False):
            raise ValueError(
                f'problem_configs.{key}.optimizer_config.alg_name: {cls.name} needs a fixed '
                "graph and experiment.graph.type 'disk' follows the robots; allowed: "
                f'{", ".join(t for t in GRAPH_TYPES if t != "disk")}'
            )


def _parse_pairs(raw: Any, problem: str) -> dict[str, PairConfig]:
    if not isinstance(raw, Mapping) or not raw:
        raise ValueError(f'problem_configs: expected a non-empty mapping of pairs, got {raw!r}')
    pairs: dict[str, PairConfig] = {}
    seen: dict[str, str] = {}
    for key, body in raw.items():
        where = f'problem_configs.{key}'
        pair = parse_dataclass(PairConfig, body, where)
        _rename_errors(
            lambda: parse_optimizer_config(pair.optimizer_config),
            'optimizer_config',
            f'{where}.optimizer_config',
        )
        if 'outer_iterations' not in pair.optimizer_config:
            raise ValueError(
                f'{where}.optimizer_config.outer_iterations: missing; allowed: an integer >= 1 '
                '(rounds)'
            )
        for i, name in enumerate(pair.metrics):
            if problem not in PROBLEM_METRICS.get(name, (problem,)):
                allowed = [
                    m for m in METRIC_NAMES if problem in PROBLEM_METRICS.get(m, (problem,))
                ]
                raise ValueError(
                    f'{where}.metrics[{i}]: {name!r} not available for problem {problem!r}; '
                    f'allowed: {", ".join(allowed)}'
                )
        if pair.problem_name in seen:
            raise ValueError(
                f'{where}.problem_name: {pair.problem_name!r} is also the problem_name of '
                f'problem_configs.{seen[pair.problem_name]}; results files would collide'
            )
        seen[pair.problem_name] = str(key)
        pairs[str(key)] = pair
    return pairs


def _resolve_paths(prob_keys: dict, base_dir: Path) -> dict:
    out = dict(prob_keys)
    for keys in PATH_KEYS:
        holder = out
        for k in keys[:-1]:
            if not isinstance(holder.get(k), Mapping):
                holder = None
                break
            holder[k] = dict(holder[k])
            holder = holder[k]
        if holder is None or not isinstance(holder.get(keys[-1]), str):
            continue
        resolved = resolve_path(holder[keys[-1]], base_dir)
        if keys in MUST_EXIST and not resolved.exists():
            raise ValueError(
                f'experiment.{".".join(keys)}: {holder[keys[-1]]!r} does not exist (looked under '
                f"{base_dir} and the package's share directory)"
            )
        holder[keys[-1]] = str(resolved)
    return out


def resolve_path(value: str, base_dir: Path) -> Path:
    """
    Resolve a config path.

    An absolute path as given; a relative one under ``base_dir`` if it exists there, else under the
    package's share directory if it exists there, else under ``base_dir``.
    """
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    first = (base_dir / path).resolve()
    if first.exists():
        return first
    try:
        shared = (share_dir() / path).resolve()
        if shared.exists():
            return shared
    except FileNotFoundError:
        pass
    return first


def _rename_errors(fn, old: str, new: str):
    """
    Run ``fn``.

    A ValueError whose message starts with ``old`` is re-raised naming ``new`` instead.
    """
    try:
        return fn()
    except ValueError as exc:
        msg = str(exc)
        if msg.startswith(old):
            start = len(old)
            raise ValueError(new + msg[start:]) from None
        raise ValueError(f'{new}: {msg}') from None


def _check_keys(
    raw: Mapping, allowed: tuple[str, ...], where: str, required: tuple[str, ...] = ()
) -> None:
    prefix = f'{where}.' if where else ''
    for key in raw:
        if key not in allowed:
            raise ValueError(f'{prefix}{key}: unknown key; allowed: {", ".join(allowed)}')
    for key in required:
        if key not in raw:
            raise ValueError(f'{prefix}{key}: missing')


def _plain(obj: Any) -> Any:
    """Dicts, lists and scalars only (tuples -> lists), for YAML."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _plain_shallow(config: Any) -> dict:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
