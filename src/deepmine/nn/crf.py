"""A linear-chain conditional random field: log-likelihood by the forward algorithm, Viterbi decoding, masks.

Scores of a tag path ``y`` over emissions ``e`` (batch, steps, tags)::

    start[y0] + e[0, y0] + sum_t (trans[y(t-1), y(t)] + e[t, y(t)]) + end[y(last)]

``allowed`` (tags × tags, from → to), ``allowed_start`` and ``allowed_end`` forbid transitions (for example
``I-X`` after ``O``): a forbidden move gets a large negative score, so no decoded path takes it. Masks are
boolean (batch, steps), true on a prefix of each row; every row must hold at least one step.
"""

from __future__ import annotations

import torch
from torch import nn

FORBIDDEN = -10_000.0


class CRF(nn.Module):
    """Transition, start and end scores over ``num_tags`` tags, optionally constrained."""

    def __init__(
        self,
        num_tags: int,
        allowed: torch.Tensor | None = None,
        allowed_start: torch.Tensor | None = None,
        allowed_end: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))
        self.start = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.end = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        ones = torch.ones(num_tags, dtype=torch.bool)
        self.register_buffer("trans_penalty", _penalty(allowed, (num_tags, num_tags)), persistent=False)
        self.register_buffer("start_penalty", _penalty(allowed_start, ones.shape), persistent=False)
        self.register_buffer("end_penalty", _penalty(allowed_end, ones.shape), persistent=False)

    def scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Effective (transitions, start, end) with the forbidden moves penalised."""
        return (
            self.transitions + self.trans_penalty,
            self.start + self.start_penalty,
            self.end + self.end_penalty,
        )

    def path_score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Score of the given tag paths (batch,)."""
        trans, start, end = self.scores()
        mask_f = mask.to(emissions.dtype)
        tags = tags.masked_fill(~mask, 0)
        emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)
        score = start[tags[:, 0]] + (emitted * mask_f).sum(1)
        steps = trans[tags[:, :-1], tags[:, 1:]]
        score = score + (steps * mask_f[:, 1:]).sum(1)
        last = tags.gather(1, (mask.sum(1) - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
        return score + end[last]

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log Z per row (batch,) by the forward algorithm."""
        trans, start, end = self.scores()
        alpha = start.unsqueeze(0) + emissions[:, 0]
        for t in range(1, emissions.shape[1]):
            nxt = torch.logsumexp(alpha.unsqueeze(2) + trans.unsqueeze(0), dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t].unsqueeze(1), nxt, alpha)
        return torch.logsumexp(alpha + end.unsqueeze(0), dim=1)

    def neg_log_likelihood(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """−log p(tags | emissions) per row (batch,)."""
        return self.log_partition(emissions, mask) - self.path_score(emissions, tags, mask)

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The best path per row (batch, steps) by Viterbi; steps outside the mask hold 0."""
        trans, start, end = self.scores()
        batch, steps, _ = emissions.shape
        score = start.unsqueeze(0) + emissions[:, 0]
        identity = torch.arange(self.num_tags).unsqueeze(0).expand(batch, -1)
        pointers = []
        for t in range(1, steps):
            best, arg = (score.unsqueeze(2) + trans.unsqueeze(0)).max(dim=1)
            keep = mask[:, t].unsqueeze(1)
            score = torch.where(keep, best + emissions[:, t], score)
            pointers.append(torch.where(keep, arg, identity))  # padded steps point to themselves
        tag = (score + end.unsqueeze(0)).argmax(dim=1)
        path = [tag]
        for arg in reversed(pointers):
            tag = arg.gather(1, tag.unsqueeze(1)).squeeze(1)
            path.append(tag)
        out = torch.stack(path[::-1], dim=1)
        return out.masked_fill(~mask, 0)


def _penalty(allowed: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor:
    if allowed is None:
        return torch.zeros(shape)
    return torch.where(allowed.to(torch.bool), 0.0, FORBIDDEN).reshape(shape).float()
