"""Recommender networks and their registry: biased matrix factorization, GMF / NeuMF (GMF + MLP), a two-tower
model over side features, and a GRU4Rec-style session model; plus the losses (MSE, BCE, BPR, softmax).

Every model scores (user, item) pairs with ``score_pairs`` and all items for some users with ``score_all``.
Pointwise models train through ``forward(users, items)``; GRU4Rec through ``forward(sequences)``. L2 on the
embeddings a batch touches is collected during ``forward`` and added to the loss by :class:`Penalized`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

from deepmine.exceptions import ConfigError, did_you_mean

T = TypeVar("T", bound=Callable)
_RECOMMENDERS: dict[str, Callable[..., RecModel]] = {}
SCORE_CHUNK = 1 << 18  # (user, item) pairs scored at once


def register_recommender(name: str) -> Callable[[T], T]:
    """Register a recommender builder under ``name``; a duplicate name is a programming error."""

    def decorate(builder: T) -> T:
        if name in _RECOMMENDERS:
            raise ValueError(f"recommender '{name}' is registered twice")
        _RECOMMENDERS[name] = builder
        return builder

    return decorate


def get_recommender_builder(name: str) -> Callable[..., RecModel]:
    if name not in _RECOMMENDERS:
        raise ConfigError(
            f"unknown recommender model '{name}'{did_you_mean(name, _RECOMMENDERS)}; "
            f"registered: {sorted(_RECOMMENDERS)} (join names with '+' for an ensemble)"
        )
    return _RECOMMENDERS[name]


def registered_recommenders() -> list[str]:
    return sorted(_RECOMMENDERS)


def _normal(*embeddings: nn.Embedding, std: float = 0.01) -> None:
    for emb in embeddings:
        nn.init.normal_(emb.weight, 0.0, std)


def _squares(*tensors: torch.Tensor) -> torch.Tensor:
    return sum(t.pow(2).sum(-1) for t in tensors).mean()


class RecModel(nn.Module):
    """Base: penalty bookkeeping and chunked scoring."""

    sequential = False

    def __init__(self, l2: float = 0.0, bias_l2: float = 0.0) -> None:
        super().__init__()
        self.l2, self.bias_l2 = l2, bias_l2
        self._penalty: torch.Tensor | None = None

    def add_penalty(self, factors: list[torch.Tensor], biases: list[torch.Tensor] = ()) -> None:
        if not self.training or not (self.l2 or self.bias_l2):
            return
        value = self.l2 * _squares(*factors) if self.l2 and factors else torch.zeros(())
        if self.bias_l2 and biases:
            value = value + self.bias_l2 * _squares(*biases)
        self._penalty = value if self._penalty is None else self._penalty + value

    def regularization(self) -> torch.Tensor:
        value, self._penalty = self._penalty, None
        return value if value is not None else torch.zeros(())

    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        self.eval()
        with torch.inference_mode():
            outs = [
                self(users[i : i + SCORE_CHUNK], items[i : i + SCORE_CHUNK]) for i in range(0, len(users), SCORE_CHUNK)
            ]
        return torch.cat(outs) if outs else torch.zeros(0)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """(len(users), n_items) scores."""
        n_items = self.n_items
        rows = []
        step = max(1, SCORE_CHUNK // max(n_items, 1))
        for start in range(0, len(users), step):
            chunk = users[start : start + step]
            u = chunk.repeat_interleave(n_items)
            i = torch.arange(n_items).repeat(len(chunk))
            rows.append(self.score_pairs(u, i).view(len(chunk), n_items))
        return torch.cat(rows) if rows else torch.zeros((0, n_items))


class MatrixFactorization(RecModel):
    """global mean + user bias + item bias + <p_u, q_i>."""

    def __init__(self, n_users: int, n_items: int, factors: int, l2: float, bias_l2: float, global_mean: float):
        super().__init__(l2, bias_l2)
        self.n_items = n_items
        self.user_factors, self.item_factors = nn.Embedding(n_users, factors), nn.Embedding(n_items, factors)
        self.user_bias, self.item_bias = nn.Embedding(n_users, 1), nn.Embedding(n_items, 1)
        _normal(self.user_factors, self.item_factors)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)
        self.register_buffer("global_mean", torch.tensor(float(global_mean)))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        p, q = self.user_factors(users), self.item_factors(items)
        bu, bi = self.user_bias(users).squeeze(-1), self.item_bias(items).squeeze(-1)
        self.add_penalty([p, q], [bu[:, None], bi[:, None]])
        return self.global_mean + bu + bi + (p * q).sum(-1)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        self.eval()
        with torch.inference_mode():
            p = self.user_factors(users)
            return (
                self.global_mean
                + self.user_bias(users)
                + self.item_bias.weight.squeeze(-1)[None, :]
                + p @ self.item_factors.weight.T
            )


def _mlp(width: int, hidden: list[int], dropout: float) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = size
    return nn.Sequential(*layers), width


class NeuMF(RecModel):
    """Neural collaborative filtering (He et al. 2017): GMF (p_u * q_i) and an MLP over [p_u; q_i] joined by a
    linear output; with ``mlp=False`` it is plain GMF. ``biases`` adds global mean + user + item biases (ratings)."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        factors: int,
        hidden: list[int],
        dropout: float,
        l2: float,
        bias_l2: float,
        global_mean: float,
        biases: bool,
        mlp: bool = True,
    ) -> None:
        super().__init__(l2, bias_l2)
        self.n_items, self.use_mlp, self.biases = n_items, mlp, biases
        self.user_gmf, self.item_gmf = nn.Embedding(n_users, factors), nn.Embedding(n_items, factors)
        _normal(self.user_gmf, self.item_gmf)
        width = factors
        if mlp:
            self.user_mlp, self.item_mlp = nn.Embedding(n_users, factors), nn.Embedding(n_items, factors)
            _normal(self.user_mlp, self.item_mlp)
            self.mlp, mlp_width = _mlp(2 * factors, hidden, dropout)
            width += mlp_width
        self.out = nn.Linear(width, 1)
        if biases:
            self.user_bias, self.item_bias = nn.Embedding(n_users, 1), nn.Embedding(n_items, 1)
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.item_bias.weight)
            nn.init.zeros_(self.out.bias)
        self.register_buffer("global_mean", torch.tensor(float(global_mean) if biases else 0.0))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        p, q = self.user_gmf(users), self.item_gmf(items)
        parts, factors = [p * q], [p, q]
        if self.use_mlp:
            pm, qm = self.user_mlp(users), self.item_mlp(items)
            parts.append(self.mlp(torch.cat([pm, qm], dim=-1)))
            factors += [pm, qm]
        score = self.out(torch.cat(parts, dim=-1)).squeeze(-1)
        if not self.biases:
            self.add_penalty(factors)
            return score
        bu, bi = self.user_bias(users), self.item_bias(items)
        self.add_penalty(factors, [bu, bi])
        return self.global_mean + bu.squeeze(-1) + bi.squeeze(-1) + score


class TwoTower(RecModel):
    """A user tower over [user embedding; user attributes] and an item tower over [item embedding; item
    attributes], each an MLP to ``factors``; the score is their dot product (+ biases for ratings)."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        factors: int,
        hidden: list[int],
        dropout: float,
        l2: float,
        bias_l2: float,
        global_mean: float,
        biases: bool,
        user_width: int,
        item_width: int,
    ) -> None:
        super().__init__(l2, bias_l2)
        self.n_items, self.biases = n_items, biases
        self.user_embedding, self.item_embedding = nn.Embedding(n_users, factors), nn.Embedding(n_items, factors)
        _normal(self.user_embedding, self.item_embedding)
        self.register_buffer("user_features", torch.zeros(n_users, user_width))
        self.register_buffer("item_features", torch.zeros(n_items, item_width))
        user_mlp, uw = _mlp(factors + user_width, hidden, dropout)
        item_mlp, iw = _mlp(factors + item_width, hidden, dropout)
        self.user_tower = nn.Sequential(user_mlp, nn.Linear(uw, factors))
        self.item_tower = nn.Sequential(item_mlp, nn.Linear(iw, factors))
        if biases:
            self.user_bias, self.item_bias = nn.Embedding(n_users, 1), nn.Embedding(n_items, 1)
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.item_bias.weight)
        self.register_buffer("global_mean", torch.tensor(float(global_mean) if biases else 0.0))

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        e = self.user_embedding(users)
        self.add_penalty([e])
        return self.user_tower(torch.cat([e, self.user_features[users]], dim=-1))

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        e = self.item_embedding(items)
        self.add_penalty([e])
        return self.item_tower(torch.cat([e, self.item_features[items]], dim=-1))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        score = (self.user_vectors(users) * self.item_vectors(items)).sum(-1)
        if not self.biases:
            return score
        bu, bi = self.user_bias(users), self.item_bias(items)
        self.add_penalty([], [bu, bi])
        return self.global_mean + bu.squeeze(-1) + bi.squeeze(-1) + score

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        self.eval()
        with torch.inference_mode():
            items = torch.arange(self.n_items)
            scores = self.user_vectors(users) @ self.item_vectors(items).T
            if self.biases:
                scores = scores + self.global_mean + self.user_bias(users) + self.item_bias.weight.squeeze(-1)[None]
            return scores


class GRU4Rec(RecModel):
    """A GRU over a user's ordered item history predicting the next item (softmax over all items, output
    scores tied to the item embeddings). The last ``max_history`` items of each user live in a buffer, so
    recommendations need only the user id."""

    sequential = True

    def __init__(self, n_users: int, n_items: int, factors: int, hidden: list[int], dropout: float, max_history: int):
        super().__init__()
        self.n_items = n_items
        self.embedding = nn.Embedding(n_items + 1, factors, padding_idx=0)
        size = hidden[0] if hidden else factors
        self.gru = nn.GRU(factors, size, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.project = nn.Linear(size, factors)
        self.item_bias = nn.Parameter(torch.zeros(n_items + 1))
        self.register_buffer("history", torch.zeros(n_users, max_history, dtype=torch.long))

    def states(self, sequences: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.drop(self.embedding(sequences)))
        return self.project(self.drop(out))

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        """(batch, steps) item ids + 1 (0 = padding) → (batch, steps, n_items + 1) next-item logits."""
        return self.states(sequences) @ self.embedding.weight.T + self.item_bias

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        self.eval()
        with torch.inference_mode():
            rows = []
            for start in range(0, len(users), 256):
                last = self.states(self.history[users[start : start + 256]])[:, -1]
                rows.append((last @ self.embedding.weight.T + self.item_bias)[:, 1:])
            return torch.cat(rows) if rows else torch.zeros((0, self.n_items))

    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if not len(users):
            return torch.zeros(0)
        unique, inverse = torch.unique(users, return_inverse=True)
        return self.score_all(unique)[inverse, items]


class RecEnsemble(RecModel):
    """The mean score of several recommenders."""

    def __init__(self, members: list[RecModel]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.n_items = members[0].n_items

    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return torch.stack([m.score_pairs(users, items) for m in self.members]).mean(0)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        return torch.stack([m.score_all(users) for m in self.members]).mean(0)


# ---- builders ----------------------------------------------------------------------------------------
def _common(spec: dict[str, Any]) -> dict[str, Any]:
    return {"n_users": spec["n_users"], "n_items": spec["n_items"], "factors": spec["factors"]}


@register_recommender("mf")
def build_mf(spec: dict[str, Any]) -> RecModel:
    return MatrixFactorization(**_common(spec), l2=spec["l2"], bias_l2=spec["bias_l2"], global_mean=spec["global_mean"])


def _neumf(spec: dict[str, Any], mlp: bool) -> RecModel:
    return NeuMF(
        **_common(spec),
        hidden=spec["hidden"],
        dropout=spec["dropout"],
        l2=spec["l2"],
        bias_l2=spec["bias_l2"],
        global_mean=spec["global_mean"],
        biases=spec["task"] == "rating",
        mlp=mlp,
    )


@register_recommender("gmf")
def build_gmf(spec: dict[str, Any]) -> RecModel:
    return _neumf(spec, mlp=False)


@register_recommender("neumf")
def build_neumf(spec: dict[str, Any]) -> RecModel:
    return _neumf(spec, mlp=True)


@register_recommender("two_tower")
def build_two_tower(spec: dict[str, Any]) -> RecModel:
    return TwoTower(
        **_common(spec),
        hidden=spec["hidden"],
        dropout=spec["dropout"],
        l2=spec["l2"],
        bias_l2=spec["bias_l2"],
        global_mean=spec["global_mean"],
        biases=spec["task"] == "rating",
        user_width=spec.get("user_width", 0),
        item_width=spec.get("item_width", 0),
    )


@register_recommender("gru4rec")
def build_gru4rec(spec: dict[str, Any]) -> RecModel:
    return GRU4Rec(**_common(spec), hidden=spec["hidden"], dropout=spec["dropout"], max_history=spec["max_history"])


def build_recommender(spec: dict[str, Any]) -> RecModel:
    """One model from its spec, or an ensemble when the spec lists ``members``."""
    if "members" in spec:
        return RecEnsemble([build_recommender(member) for member in spec["members"]])
    return get_recommender_builder(spec["name"])(spec)


# ---- losses --------------------------------------------------------------------------------------
class Pairwise(nn.Module):
    """BPR's input: score(user, positive) - score(user, negative)."""

    def __init__(self, model: RecModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        return self.model(users, positives) - self.model(users, negatives)


class Penalized(nn.Module):
    """``loss(output, target)`` plus the L2 penalty the model collected in its forward pass."""

    def __init__(self, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], model: RecModel) -> None:
        super().__init__()
        self.loss = loss
        self.model = model

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(output, target) + self.model.regularization()


def mse_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return nn.functional.mse_loss(output, target)


def bce_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return nn.functional.binary_cross_entropy_with_logits(output, target)


def bpr_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return -nn.functional.logsigmoid(output).mean()


def softmax_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Next-item cross-entropy over the non-padding steps of (batch, steps, vocabulary) logits."""
    mask = target > 0
    return nn.functional.cross_entropy(output[mask], target[mask])


LOSSES = {"mse": mse_loss, "bce": bce_loss, "bpr": bpr_loss, "softmax": softmax_loss}
