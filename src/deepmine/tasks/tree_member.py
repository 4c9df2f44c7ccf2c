"""The tree member of a table fit: when it applies, growing it with LightGBM, and its weight in the blend.

The trees are grown on the training rows with early stopping on the validation rows, after the network has
trained; the weight of the trees (0, 0.1, …, 0.8) is the one with the lowest validation loss of the blend, so a
table on which trees do not help keeps the network alone (weight 0). Validation metrics, the decision threshold
and the report are taken from that blend. When the validation rows were split from the training data (no
``--valid``), the trees are then regrown on all rows with the rounds early stopping chose: the saved model has
not seen less data than the peer a data miner would fit (on Adult that is worth 0.3 points of accuracy).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from deepmine.config import RunConfig
from deepmine.exceptions import ConfigError, DeepmineWarning
from deepmine.features.pipeline import FeaturePipeline
from deepmine.nn.trees import TreeBlend, TreeMember, from_lightgbm, mix_log_probabilities, tree_inputs, tree_spec
from deepmine.predictor import forward_in_chunks
from deepmine.tasks.row_weights import valid_loss_weights

TREE_TASKS = ("binary", "multiclass", "regression")
# auto grows trees while training rows × model-input width (× classes) stay within this: LightGBM's histograms
# cost about that per round, so pixels-as-columns tables (60,000 × 784 × 10 classes) are left to the network
TREE_CELLS = 100_000_000
LEARNING_RATE = 0.1
MAX_TREE_CLASSES = 100  # one tree per class and round: many classes leave too few rounds to be worth it
MAX_TREES = 2000  # boosting rounds × trees per round (one per class for multiclass): bounds size and predict time
PATIENCE = 50  # rounds without a better validation loss before growing stops
ROUNDS_WITHOUT_VALID = 100  # LightGBM's default when there is nothing to stop on
# the trees' weights tried: never the trees alone, since a validation split with few positives (or one both
# models separate perfectly) makes any trees-only choice noise: ODDS thyroid (9 positives among the validation
# rows) picked weight 1 for average precision 0.886 on test, where every blend from 0.2 to 0.8 reached 0.970
WEIGHTS = tuple(i / 10 for i in range(9))


def _not_for_trees(pipeline: FeaturePipeline, task: str | None, n_classes: int) -> str | None:
    """Why trees cannot join this model, or None."""
    if task not in TREE_TASKS:
        return f"a {task} target"
    if pipeline.text:
        return "text columns"
    if n_classes > MAX_TREE_CLASSES:
        return f"{n_classes} classes (at most {MAX_TREE_CLASSES})"
    return None


def wants_trees(config: RunConfig, pipeline: FeaturePipeline, task: str | None, n_classes: int, rows: int) -> bool:
    """``model.trees``: on/off as set; auto = on for binary, multiclass (up to MAX_TREE_CLASSES classes) and
    regression tables whose inputs are numeric and categorical columns only, within TREE_CELLS."""
    setting = config.model.trees
    if setting == "off":
        return False
    unfit = _not_for_trees(pipeline, task, n_classes)
    if setting == "on" and unfit:
        warnings.warn(f"model.trees=on is ignored: trees are not blended with {unfit}", DeepmineWarning, 2)
    if setting == "on" or unfit:
        wanted = unfit is None
    else:
        width = len(pipeline.tree_columns)
        wanted = width > 0 and rows * width * _trees_per_round(task, n_classes) <= TREE_CELLS
    return wanted and _lightgbm_loads(setting)


def _lightgbm_loads(setting: str) -> bool:
    """Whether LightGBM imports. A broken install (most often its OpenMP library missing: libgomp on slim Linux
    images, libomp on macOS) fails ``model.trees=on`` with the fix, and leaves the trees out under auto."""
    try:
        import lightgbm  # noqa: F401
    except (ImportError, OSError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        fix = "install the OpenMP runtime (apt install libgomp1; brew install libomp) or reinstall lightgbm"
        if setting == "on":
            raise ConfigError(f"model.trees=on needs LightGBM, which failed to import ({reason}): {fix}") from None
        warnings.warn(
            f"trees left out: LightGBM failed to import ({reason}); {fix}, or --set model.trees=off to fit the "
            "network alone without this warning",
            DeepmineWarning,
            3,
        )
        return False
    return True


def _params(task: str, n_classes: int, config: RunConfig) -> dict[str, Any]:
    objective = {"binary": "binary", "multiclass": "multiclass", "regression": "regression"}[task]
    params: dict[str, Any] = {
        "objective": objective,
        "learning_rate": LEARNING_RATE,
        "seed": config.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": torch.get_num_threads(),
        "verbose": -1,
    }
    if task == "multiclass":
        params["num_class"] = n_classes
    return params


def _sample_weight(task: str, config: RunConfig, y: np.ndarray) -> np.ndarray | None:
    """Balanced class weights per row when ``trainer.class_weight=balanced`` (as the network's loss)."""
    if task == "regression" or config.trainer.class_weight != "balanced":
        return None
    from sklearn.utils.class_weight import compute_sample_weight

    return compute_sample_weight("balanced", y)


def _trees_per_round(task: str, n_classes: int) -> int:
    """LightGBM grows one tree per class and round for multiclass targets, else one."""
    return n_classes if task == "multiclass" else 1


@dataclass(frozen=True)
class TreeRows:
    """What the trees are grown on: the model inputs and targets of the training and validation rows, and the
    columns of the trees' design (:func:`tree_inputs`) they split on, in ascending order
    (``FeaturePipeline.tree_columns``)."""

    x_train: Sequence[torch.Tensor]
    y_train: torch.Tensor
    x_valid: Sequence[torch.Tensor]
    y_valid: torch.Tensor
    task: str
    n_classes: int
    config: RunConfig
    columns: Sequence[int]
    weights: torch.Tensor | None = None  # row weights (``columns.weight``) of the training rows
    valid_weights: torch.Tensor | None = None  # and of the validation rows

    def design(self, blocks: Sequence[torch.Tensor]) -> np.ndarray:
        """The split-on columns of the trees' design for these model inputs (picked before widening to float64:
        the piecewise-linear bins left out can be most of the numeric block)."""
        numeric, codes = blocks[0], blocks[1]
        width = numeric.shape[1]
        picked = torch.as_tensor(list(self.columns), dtype=torch.int64)
        in_numeric = picked[picked < width]
        return tree_inputs(numeric[:, in_numeric], codes[:, picked[picked >= width] - width]).numpy()

    def dataset(self, x: Sequence[torch.Tensor], y: torch.Tensor, rows: torch.Tensor | None) -> Any:
        """A LightGBM dataset of these model inputs and targets, weighted by the row weights ``rows`` times the
        balanced class weights when configured (scaled to mean 1: LightGBM's leaf limits are in weight units)."""
        import lightgbm

        labels = y.numpy()
        weight = _sample_weight(self.task, self.config, labels)
        if rows is not None:
            weight = rows.numpy() * (1.0 if weight is None else weight)
            weight = weight * (len(weight) / weight.sum())
        return lightgbm.Dataset(self.design(x), labels, weight=weight, params={"verbose": -1})


def grow_trees(rows: TreeRows) -> tuple[TreeMember, int]:
    """LightGBM trees on the model inputs (early-stopped on the validation rows), as a tensor member, and the
    number of boosting rounds kept."""
    import lightgbm

    task, n_classes = rows.task, rows.n_classes
    train = rows.dataset(rows.x_train, rows.y_train, rows.weights)
    params = _params(task, n_classes, rows.config)
    outputs = 1 if task == "regression" else n_classes
    if len(rows.y_valid) == 0:
        booster = lightgbm.train(params, train, num_boost_round=ROUNDS_WITHOUT_VALID)
        return from_lightgbm(booster, outputs, columns=rows.columns), ROUNDS_WITHOUT_VALID
    measured = valid_loss_weights(rows.valid_weights)
    weight = None if measured is None else measured.numpy()
    valid = lightgbm.Dataset(rows.design(rows.x_valid), rows.y_valid.numpy(), weight=weight, reference=train)
    stop = lightgbm.early_stopping(PATIENCE, first_metric_only=True, verbose=False)
    max_rounds = MAX_TREES // _trees_per_round(task, n_classes)
    booster = lightgbm.train(params, train, max_rounds, valid_sets=[valid], callbacks=[stop])
    rounds = booster.best_iteration or booster.current_iteration()
    return from_lightgbm(booster, outputs, rounds, rows.columns), rounds


def _blend_loss(
    net: torch.Tensor, trees: torch.Tensor, weight: float, target: torch.Tensor, task: str, rows: torch.Tensor
) -> float:
    """The blend's mean loss over the validation rows, each row weighted by ``rows``."""
    if task == "regression":
        blend = (1 - weight) * net[:, 0] + weight * trees[:, 0]
        per_row = (blend.double() - target.double()) ** 2
    else:
        per_row = -mix_log_probabilities(net, trees, weight).gather(1, target[:, None])[:, 0].double()
    return float((per_row * rows).sum() / rows.sum())


def choose_weight(
    network: nn.Module,
    trees: TreeMember,
    x_valid: Sequence[torch.Tensor],
    y_valid: torch.Tensor,
    task: str,
    row_weights: torch.Tensor | None = None,
) -> tuple[float, dict[str, float]]:
    """The trees' weight with the lowest validation loss of the blend (rows weighted by ``row_weights``), and
    that loss per weight tried."""
    if len(y_valid) == 0:
        return 0.5, {}
    net = forward_in_chunks(network, list(x_valid)).float()
    scored = forward_in_chunks(trees, list(x_valid)).float()
    rows = torch.ones(len(y_valid), dtype=torch.float64) if row_weights is None else row_weights.double()
    losses = {w: _blend_loss(net, scored, w, y_valid, task, rows) for w in WEIGHTS}
    best = min(losses, key=lambda w: (losses[w], w))
    return best, {f"{w:g}": round(loss, 6) for w, loss in losses.items()}


def add_tree_member(network: nn.Module, spec: dict[str, Any], rows: TreeRows) -> tuple[nn.Module, dict[str, Any]]:
    """The trained network blended with a tree member (``spec["trees"]`` set), or the network alone when the
    validation rows give the trees weight 0; and what the training record keeps about it."""
    if rows.task != "regression" and len(torch.unique(rows.y_train)) < 2:  # nothing for trees to separate
        return network, {
            "rounds": 0,
            "weight": 0.0,
            "valid_loss_by_weight": {},
            "left_out": "the training rows hold one class",
        }
    trees, rounds = grow_trees(rows)
    measured = valid_loss_weights(rows.valid_weights)
    weight, losses = choose_weight(network, trees, rows.x_valid, rows.y_valid, rows.task, measured)
    record = {"rounds": rounds, "weight": weight, "valid_loss_by_weight": losses}
    if weight == 0:
        return network, record
    spec["trees"] = {**tree_spec(trees), "weight": weight}
    return TreeBlend(network, trees, weight, classify=rows.task != "regression").eval(), record


def regrow_on_all_rows(model: nn.Module, spec: dict[str, Any], rows: TreeRows, rounds: int) -> int:
    """Replace a :class:`TreeBlend`'s trees by ``rounds`` rounds grown on the training and validation rows
    together, updating ``spec["trees"]`` to the new shape; return the number of rows they were grown on."""
    import lightgbm

    if not isinstance(model, TreeBlend):
        return 0
    x_rows = [torch.cat(pair) for pair in zip(rows.x_train, rows.x_valid, strict=True)]
    weights = None if rows.weights is None else torch.cat([rows.weights, rows.valid_weights])
    both = rows.dataset(x_rows, torch.cat([rows.y_train, rows.y_valid]), weights)
    booster = lightgbm.train(_params(rows.task, rows.n_classes, rows.config), both, rounds)
    model.trees = from_lightgbm(booster, model.trees.outputs, columns=rows.columns).eval()
    spec["trees"] = {**spec["trees"], **tree_spec(model.trees)}
    return len(x_rows[0])


def describe_trees(record: dict[str, Any]) -> str:
    """One line for the CLI: the tree member's rounds and weight, or why it was left out."""
    if "left_out" in record:
        return f"trees: left out: {record['left_out']}"
    if record["weight"] == 0:
        return (
            f"trees: left out (LightGBM, {record['rounds']} rounds): the validation loss was lowest with the "
            "network alone"
        )
    regrown = f", then regrown on all {record['regrown_on_rows']} rows" if "regrown_on_rows" in record else ""
    return (
        f"trees: LightGBM member of {record['rounds']} rounds with weight {record['weight']:g} in the blend "
        f"(chosen on validation){regrown}; --set model.trees=off leaves them out"
    )
