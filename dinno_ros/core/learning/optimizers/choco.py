"""
Choco-SGD (Koloskova, Stich, Jaggi, ICML 2019, Algorithm 1): DSGD that sends compressed updates.

Every robot keeps public copies x^_j of itself and its neighbours, which all of them update with
the same compressed messages q_j = Q(x_j - x^_j), and gossips towards them:
x_i <- x_i + gamma sum_j w_ij (x^_j - x^_i) (Metropolis weights). Our round k: ``outgoing`` sends
q_i of the parameters after round k - 1's gradient step; ``step`` adds every q to its public copy,
gossips, and takes the gradient step. That is the paper's sequence (gradient, compress, update the
copies, gossip) started from x^(1/2) = x_0.

Where the copies start (``public_start``): ``zeros`` (the paper's x^_j = 0) is exact from any
start, but with top-k the first messages then carry the initial model itself. ``initial`` starts
every copy, its own and the neighbours', at this robot's x_0; the copies every robot holds of robot
j are then still identical (the paper's invariant) only if every robot starts from the same x_0,
as the robots of a config with ``experiment.init_spread: 0`` (the shared base weights) do. With
different starts each robot's copy of robot j would be off by x_0^i - x_0^j for good, and the
gossip would keep that initial disagreement: use ``zeros`` there. (On ``bench/bandwidth.py``
``initial`` gained nothing: the README's "Bytes on the wire and compression".)

The copies must see every message exactly once, so Choco needs a fixed graph and reliable
delivery: a neighbour that first appears after round 0 is an error, and a message that missed its
round (the round rule then hands over the neighbour's previous one) is not applied twice: the copy
stays where it was, now off from the neighbour's own copy by the lost update (a warning says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import logging
from typing import ClassVar, Mapping

import torch

from .base import LocalProblem, NeighborMessage, PROFILE_IGNORED, RobotOptimizer
from .dsgd import mix
from ..compression import Arrays, CompressionConfig, Compressor
from ..schema import register_optimizer, spec

PUBLIC_STARTS = ('zeros', 'initial')

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChocoConfig:
    """``optimizer_config`` keys for ``alg_name: choco``."""

    IGNORED_KEYS: ClassVar[dict[str, str]] = {'profile': PROFILE_IGNORED}
    FIXED_GRAPH: ClassVar[bool] = True  # its copies of the neighbours need every message

    alpha0: float = spec(0.005, gt=0.0)  # initial SGD step size (the paper's eta)
    mu: float = spec(0.0, min=0.0)  # alpha <- alpha * (1 - mu * alpha) after every round (DSGD's)
    gamma: float = spec(0.5, gt=0.0, max=1.0)  # consensus step size
    compression: CompressionConfig = field(default_factory=CompressionConfig)
    outer_iterations: int = spec(2000, min=1)  # rounds
    # where x^_j start: zeros (any start) | initial (this robot's x_0; needs equal starts)
    public_start: str = spec('zeros', choices=PUBLIC_STARTS)
    # rounds per gradient step: the other rounds only exchange Q(x - x^) and gossip
    gossip_steps: int = spec(1, min=1)

    def validate(self, section: str = 'optimizer_config') -> None:
        if self.mu * self.alpha0 >= 1.0:
            raise ValueError(
                f'{section}.mu: mu * alpha0 = {self.mu * self.alpha0:g} makes the step size '
                'negative after one round; allowed: mu * alpha0 < 1'
            )


@register_optimizer('choco')
class ChocoSGD(RobotOptimizer):
    """Robot i's Choco-SGD state: its public copy, its neighbours' copies, its step size."""

    config_cls = ChocoConfig
    vectors = ('delta',)

    def __init__(self, config: ChocoConfig, problem: LocalProblem) -> None:
        super().__init__(config, problem)
        self.alpha = float(config.alpha0)
        self.compressor = Compressor(config.compression, self.params.numel())
        self.start = (
            self.params.detach().clone()
            if config.public_start == 'initial'
            else torch.zeros_like(self.params)
        )
        self.public = self.start.clone()  # x^_i
        self.copies: dict[int, torch.Tensor] = {}  # x^_j of the neighbours
        self.applied: dict[int, int] = {}  # neighbour -> the round of its last applied message
        self.round = 0  # the round the next outgoing() belongs to
        self._sent: tuple[int, Arrays, torch.Tensor] | None = None

    def compressor_of(self, vector: str) -> Compressor | None:
        return self.compressor if vector == 'delta' else None

    def _delta(self) -> tuple[Arrays, torch.Tensor]:
        """Return this round's Q(x_i - x^_i): wire arrays and the values every receiver decodes."""
        if self._sent is None or self._sent[0] != self.round:
            diff = self.params.detach() - self.public
            arrays, dense = self.compressor.compress(diff, self.robot_id, self.round)
            self._sent = (self.round, arrays, dense)
        return self._sent[1], self._sent[2]

    def outgoing(self) -> dict[str, torch.Tensor]:
        return {'delta': self._delta()[1].clone()}

    def wire_arrays(self, vector: str) -> Arrays | None:
        return self._delta()[0] if vector == 'delta' else None

    def step(
        self, round_k: int, neighbors: Mapping[int, NeighborMessage], degree: int
    ) -> dict[str, float]:
        self.round = round_k
        own = self._delta()[1]
        vec = self.params
        with torch.no_grad():
            self.public += own
            for j in sorted(neighbors):
                self._update_copy(j, round_k, neighbors)
            if neighbors:
                stacked = torch.stack([self.copies[j] for j in sorted(neighbors)])
                mixed = mix(self.public, neighbors, 'delta', degree, stacked)
                vec.add_(mixed - self.public, alpha=self.config.gamma)
        self.round = round_k + 1
        alpha = self.alpha
        if (round_k + 1) % self.config.gossip_steps:
            return {'forward_passes': 0.0, 'alpha': alpha}
        loss, grad = self.batch_loss_and_grad()
        with torch.no_grad():
            vec.add_(grad, alpha=-alpha)
        self.alpha = alpha * (1.0 - self.config.mu * alpha)
        return {'train_loss': loss, 'forward_passes': 1.0, 'alpha': alpha}

    def _update_copy(self, j: int, round_k: int, neighbors: Mapping[int, NeighborMessage]) -> None:
        sent_for = neighbors[j].round_k if neighbors[j].round_k is not None else round_k
        if sent_for <= self.applied.get(j, -1):
            logger.warning(
                'choco: robot %d round %d: no new message from robot %d (its round-%d message is '
                'applied already); its copy misses that update from now on',
                self.robot_id,
                round_k,
                j,
                sent_for,
            )
            return
        self.applied[j] = sent_for
        q = self.neighbor_vectors({j: neighbors[j]}, 'delta', self.public)[0]
        if j not in self.copies:
            if round_k > 0:
                raise ValueError(
                    f'choco: robot {j} became a neighbour at round {round_k}; Choco-SGD keeps '
                    'copies built from every message since round 0 and needs a fixed graph'
                )
            self.copies[j] = self.start.clone()
        self.copies[j] += q
