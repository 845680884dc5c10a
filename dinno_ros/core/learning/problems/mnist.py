"""
MNIST classification: the research code's one-conv-layer CNN and NLL loss.

Hetero or random splits between robots.

Data comes from ``data_dir``: the torchvision layout (``MNIST/raw``) or plain IDX ``.gz`` files.
With the training files present, train = the 60,000 training digits and validation = the 10,000
test digits; with only ``t10k-*`` files (the shared data), the 10,000 test digits are split once,
by a fixed permutation, into ``num_train`` training digits and the rest for validation.
Missing files are fetched through torchvision as the research code did: by default only when the
folder holds no MNIST files at all (``download: true``: whatever is missing; ``false``: never).

The problem's data (:class:`MNISTData`: the digits, each node's share and, with a ``map:``, the
robots' :class:`~.world.World`) is shareable between problems; the world is built when a motion is
first asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import gzip
import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from .base import Problem, robot_generator, robot_seed, TensorLocalProblem
from .world import LidarSection, MapSection, NOISE_STREAM, RoutesSection, World
from ..agent import RobotMotion
from ..schema import register_problem, spec

logger = logging.getLogger(__name__)

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
SPLIT_TYPES = ('hetero', 'random')
SPLIT_SEED = 20220101  # the fixed permutation that splits t10k into train / validation parts


@dataclass(frozen=True)
class MNISTModelConfig:
    """The YAML ``model:`` section."""

    num_filters: int = spec(3, min=1)  # conv filters
    kernel_size: int = spec(5, min=1, max=27)  # conv kernel size
    linear_width: int = spec(64, min=1)  # hidden fully connected width


@dataclass(frozen=True)
class MNISTConfig:
    """
    Keys the MNIST problem uses.

    From the research code's ``experiment:`` section and a pair's batch sizes.
    """

    IGNORED_KEYS: ClassVar[dict[str, str]] = {}

    data_dir: str = 'data'  # torchvision root or a folder of IDX .gz files
    data_split_type: str = spec(
        'hetero', choices=SPLIT_TYPES
    )  # hetero: classes per node; random: equal shares
    loss: str = spec('NLL', choices=('NLL',))
    model: MNISTModelConfig = field(default_factory=MNISTModelConfig)
    train_batch_size: int = spec(64, min=1)
    val_batch_size: int = spec(1024, min=1)
    num_train: int = spec(
        8000, min=1
    )  # t10k-only data: digits in the training part (rest: validation)
    download: bool | None = None  # None: when no files at all; true: what is missing; false: never
    # optional world: with a map the robots also drive their routes and scan (the swarm; disk
    # graphs)
    map: MapSection | None = None  # noqa: A003 (the research code's YAML key)
    routes: RoutesSection = field(default_factory=RoutesSection)
    lidar: LidarSection = field(default_factory=LidarSection)


class MNISTConvNet(nn.Module):
    """
    The research code's one-conv-layer CNN.

    conv(num_filters x kernel_size^2) -> ReLU -> maxpool 2 -> fc(linear_width) -> ReLU -> fc(10)
    -> log_softmax.
    """

    def __init__(self, num_filters: int = 3, kernel_size: int = 5, linear_width: int = 64) -> None:
        super().__init__()
        side = (28 - kernel_size + 1) // 2
        self.conv = nn.Conv2d(1, num_filters, kernel_size)
        self.fc1 = nn.Linear(num_filters * side * side, linear_width)
        self.fc2 = nn.Linear(linear_width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return F.log_softmax(self.fc2(x), dim=1)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) as a numpy array."""
    opener = gzip.open if path.suffix == '.gz' else open
    with opener(path, 'rb') as fh:
        raw = fh.read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f'{path}: not an unsigned-byte IDX file')
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[slice(4 + 4 * k, 8 + 4 * k)], 'big') for k in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find(data_dir: Path, stem: str) -> Path | None:
    for folder in (data_dir, data_dir / 'MNIST' / 'raw', data_dir / 'mnist'):
        for name in (stem, stem + '.gz'):
            if (folder / name).is_file():
                return folder / name
    return None


def _load_pair(data_dir: Path, prefix: str) -> tuple[np.ndarray, np.ndarray] | None:
    images = _find(data_dir, f'{prefix}-images-idx3-ubyte')
    labels = _find(data_dir, f'{prefix}-labels-idx1-ubyte')
    if images is None or labels is None:
        return None
    return read_idx(images), read_idx(labels)


def _to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return (x - MNIST_MEAN) / MNIST_STD, torch.from_numpy(labels.astype(np.int64))


def load_mnist(data_dir: str | Path, num_train: int = 8000, download: bool | None = False):
    """
    Load ((train_x, train_y), (val_x, val_y)).

    Normalised float images (N, 1, 28, 28) and int64 labels. ``download``: see ``MNISTConfig``.
    """
    data_dir = Path(data_dir)
    test = _load_pair(data_dir, 't10k')
    train = _load_pair(data_dir, 'train')
    if test is None and download is None or (test is None or train is None) and download:
        fetch_mnist(data_dir)
        test, train = _load_pair(data_dir, 't10k'), _load_pair(data_dir, 'train')
    if test is None:
        raise FileNotFoundError(
            f'problem.data_dir: no MNIST files (t10k-images-idx3-ubyte[.gz]) under {data_dir}'
        )
    if train is not None:
        return _to_tensors(*train), _to_tensors(*test)
    images, labels = test
    if not 0 < num_train < len(labels):
        raise ValueError(
            f'problem.num_train: {num_train} out of range; allowed: 1..{len(labels) - 1}'
        )
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    tr, va = order[:num_train], order[num_train:]
    return _to_tensors(images[tr], labels[tr]), _to_tensors(images[va], labels[va])


def fetch_mnist(data_dir: Path) -> None:
    """Download MNIST into ``data_dir`` through torchvision; errors name ``problem.data_dir``."""
    from torchvision import datasets  # only here: most runs never download

    logger.info('MNIST: no files under %s, downloading', data_dir)
    try:
        for is_train in (True, False):
            datasets.MNIST(str(data_dir), train=is_train, download=True)
    except (OSError, RuntimeError) as exc:
        raise FileNotFoundError(
            f'problem.data_dir: no MNIST files (t10k-images-idx3-ubyte[.gz]) under {data_dir} '
            f'and the download failed ({str(exc).splitlines()[-1]}); put the IDX files there'
        ) from exc


def split_indices(
    labels: torch.Tensor, num_nodes: int, split_type: str, seed: int
) -> list[torch.Tensor]:
    """
    Each node's sample indices.

    ``hetero`` divides the 10 classes between nodes, ``random`` gives equal shares.
    """
    if split_type == 'hetero':
        if num_nodes > 10:
            raise ValueError(
                f"graph.num_nodes: {num_nodes} nodes with data_split_type 'hetero'; allowed: 1..10"
            )
        groups = np.array_split(np.arange(10), num_nodes)
        return [
            torch.nonzero(torch.isin(labels, torch.as_tensor(g)), as_tuple=True)[0] for g in groups
        ]
    if split_type == 'random':
        gen = torch.Generator().manual_seed(int(seed))
        order = torch.randperm(len(labels), generator=gen)
        return list(torch.tensor_split(order, num_nodes))
    raise ValueError(
        f'problem.data_split_type: unknown {split_type!r}; allowed: {", ".join(SPLIT_TYPES)}'
    )


def nll_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return F.nll_loss(model(x), y)


@torch.no_grad()
def evaluate_classifier(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int
) -> dict[str, float]:
    """
    Return the validation NLLs and top-1 accuracy of a log-softmax classifier over (x, y).

    ``validation_loss`` is the research code's number: the sum over batches of the batch-mean NLL,
    divided by the number of digits (about batch_size times smaller than the mean NLL);
    ``validation_nll`` is the mean NLL per digit.
    """
    was_training = model.training
    model.eval()
    total_loss, batch_means, correct = 0.0, 0.0, 0
    for start in range(0, len(y), batch_size):
        stop = start + batch_size
        out = model(x[start:stop])
        target = y[start:stop]
        batch_loss = float(F.nll_loss(out, target, reduction='sum'))
        total_loss += batch_loss
        batch_means += batch_loss / len(target)
        correct += int((out.argmax(dim=1) == target).sum())
    model.train(was_training)
    n = len(y)
    return {
        'validation_loss': batch_means / n,
        'validation_nll': total_loss / n,
        'top1_accuracy': correct / n,
    }


@dataclass
class MNISTData:
    """
    An MNIST problem's shared data.

    CPU tensors, each node's sample indices and the robots' world (built on first use).
    """

    key: Any  # what it was built from (MNISTProblem.data_key)
    train_x: torch.Tensor  # (N, 1, 28, 28) normalised
    train_y: torch.Tensor  # (N,) int64
    val_x: torch.Tensor
    val_y: torch.Tensor
    node_indices: list[torch.Tensor]  # per node, rows of train_x
    world: World | None = None  # the robots' world with a map:, set by MNISTProblem.world


@register_problem('mnist')
class MNISTProblem(Problem):
    """Distributed MNIST classification."""

    config_cls = MNISTConfig
    metric_names = ('validation_loss', 'validation_nll', 'top1_accuracy', 'current_epoch')

    def __init__(
        self, config, num_nodes: int, seed: int = 0, device='cpu', data: MNISTData | None = None
    ) -> None:
        super().__init__(config, num_nodes, seed, device, data)

    def data_key(self) -> tuple:
        cfg = self.config
        return (
            cfg.data_dir,
            cfg.num_train,
            cfg.data_split_type,
            cfg.map,
            cfg.routes,
            cfg.lidar,
            self.num_nodes,
            self.seed,
        )

    def build_data(self) -> MNISTData:
        """Load the digits and split them between the nodes (the world: when first used)."""
        cfg = self.config
        (train_x, train_y), (val_x, val_y) = load_mnist(cfg.data_dir, cfg.num_train, cfg.download)
        node_indices = split_indices(train_y, self.num_nodes, cfg.data_split_type, self.seed)
        logger.info(
            'MNIST: %d train / %d validation digits, %s split over %d nodes',
            len(train_y),
            len(val_y),
            cfg.data_split_type,
            self.num_nodes,
        )
        return MNISTData(self.data_key(), train_x, train_y, val_x, val_y, node_indices)

    @property
    def train_x(self) -> torch.Tensor:
        return self.data.train_x

    @property
    def train_y(self) -> torch.Tensor:
        return self.data.train_y

    @property
    def node_indices(self) -> list[torch.Tensor]:
        return self.data.node_indices

    def validation_cpu(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the validation digits and labels."""
        return self.data.val_x, self.data.val_y

    @property
    def world(self) -> World | None:
        """
        Return the robots' world; None without a ``map:``.

        Built on first use and kept in ``data`` (no validation scans: nobody validates on it).
        """
        cfg = self.config
        if cfg.map is None:
            return None
        if self.data.world is None:
            self.data.world = World(
                cfg.map, cfg.lidar, cfg.routes, None, self.num_nodes, self.seed
            )
        return self.data.world

    def make_model(self) -> nn.Module:
        m = self.config.model
        return MNISTConvNet(m.num_filters, m.kernel_size, m.linear_width)

    def local_problem(self, robot_id: int) -> TensorLocalProblem:
        self.check_robot(robot_id)
        idx = self.node_indices[robot_id]
        data = (self.train_x[idx].to(self.device), self.train_y[idx].to(self.device))
        return TensorLocalProblem(
            self.base_model(),
            data,
            self.config.train_batch_size,
            robot_generator(self.seed, robot_id),
            nll_loss,
        )

    def central_problem(self) -> TensorLocalProblem:
        """All training digits in one local problem (the centralised reference)."""
        data = (self.train_x.to(self.device), self.train_y.to(self.device))
        return TensorLocalProblem(
            self.base_model(),
            data,
            self.config.train_batch_size,
            robot_generator(self.seed, -1),
            nll_loss,
        )

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return evaluate_classifier(model, *self.validation_set, self.config.val_batch_size)

    def motion(self, robot_id: int):
        """
        Robot ``robot_id``'s drive through the configured map.

        None without a map: robots stand still.
        """
        world = self.world
        if world is None:
            return None
        self.check_robot(robot_id)
        rng = np.random.default_rng(robot_seed(self.seed, robot_id, NOISE_STREAM))
        return RobotMotion(world.path(robot_id), world.lidar, self.config.routes.dt, rng)
