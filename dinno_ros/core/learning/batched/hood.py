"""One round's neighbourhoods of all robots as tensors: gathers, sums and Metropolis mixing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import networkx as nx
import torch

from ..graphs import metropolis_weights


@dataclass(frozen=True)
class Neighbourhood:
    """
    Every robot's neighbours in one round, rows in robot order, neighbours in sorted id order.

    ``index`` [R, D] holds neighbour rows padded with R (a zero row); ``degree`` [R, 1] the
    degrees; ``w_self`` [R, 1] and ``w`` [R, 1, D] the Metropolis weights (0 on padding).
    """

    neighbors: list[list[int]]  # row -> neighbour rows
    index: torch.Tensor
    degree: torch.Tensor
    w_self: torch.Tensor
    w: torch.Tensor

    @classmethod
    def of(cls, graph: nx.Graph, ids: Sequence[int], like: torch.Tensor) -> Neighbourhood:
        """Build the round's neighbourhoods of robots ``ids`` (rows) from the round's graph."""
        row = {int(i): r for r, i in enumerate(ids)}
        neighbors = [sorted(int(j) for j in graph.neighbors(i)) for i in ids]
        degree = [len(n) for n in neighbors]
        width = max(degree, default=0)
        index = [[row[j] for j in n] + [len(ids)] * (width - len(n)) for n in neighbors]
        w_self, w = [], []
        for r, n in enumerate(neighbors):
            own, weights = metropolis_weights(degree[r], {j: degree[row[j]] for j in n})
            w_self.append(own)
            w.append([weights[j] for j in n] + [0.0] * (width - len(n)))
        kw = {'dtype': like.dtype, 'device': like.device}
        return cls(
            [[row[j] for j in n] for n in neighbors],
            torch.tensor(index, dtype=torch.long, device=like.device).reshape(len(ids), width),
            torch.tensor(degree, **kw).unsqueeze(1),
            torch.tensor(w_self, **kw).unsqueeze(1),
            torch.tensor(w, **kw).reshape(len(ids), 1, width),
        )

    def gather(self, vec: torch.Tensor) -> torch.Tensor:
        """Return every robot's neighbours' rows of ``vec`` [R, P]: [R, D, P] (zero padding)."""
        padded = torch.cat([vec, vec.new_zeros(1, vec.shape[1])])
        return padded[self.index]

    def total(self, vec: torch.Tensor) -> torch.Tensor:
        """Return sum_j vec_j over each robot's neighbours, [R, P]."""
        return self.gather(vec).sum(dim=1)

    def mix(self, own: torch.Tensor, theirs: torch.Tensor) -> torch.Tensor:
        """Return W_ii own_i + sum_j W_ij theirs_ij (``theirs``: [R, D, P], gathered rows)."""
        return self.w_self * own + torch.bmm(self.w, theirs).squeeze(1)
