"""The content of each report section, as plain dicts the template renders (figures already embedded)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from deepmine.explain.tokens import strongest
from deepmine.features.datetime import DatetimeEncoder
from deepmine.report import plots

TOKENS_SHOWN = 10  # strongest tokens per text column of an example row

SENSITIVE = re.compile(r"sex|gender|race|ethnic|religion|age|nationality|country|marital|disab", re.IGNORECASE)


def profile_section(profile: dict[str, Any]) -> dict[str, Any]:
    """Roles and why, missing values, distributions, target balance, correlations."""
    dist = profile.get("distributions") or {}
    corr = dist.get("correlation")
    target = profile.get("target")
    balance = None
    if target and "balance" in target:
        labels = list(target["balance"])
        balance = plots.bars(labels, [target["balance"][k] for k in labels], f"share of each '{target['name']}' value")
    missing = sorted((c for c in profile["columns"] if c["missing_share"] > 0), key=lambda c: -c["missing_share"])
    return {
        "source": profile["source"],
        "rows": profile["rows"],
        "columns": profile["columns"],
        "missing": missing,
        "target": target,
        "balance_png": balance,
        "distributions_png": plots.distributions(profile),
        "sample_rows": dist.get("sample_rows"),
        "correlation_png": plots.correlation(corr["columns"], corr["matrix"]) if corr else None,
    }


def preprocessing_section(predictor) -> list[dict[str, str]]:
    """What the pipeline decided for each column."""
    pipeline, schema = predictor.pipeline, predictor.schema
    out = []
    for spec in schema.columns:
        name = spec.name
        if name in pipeline.numeric:
            enc = pipeline.numeric[name]
            if isinstance(enc, DatetimeEncoder):
                steps = f"date parts {', '.join(enc.parts) or '(none vary)'}, each median-imputed and standardized"
            else:
                scaling = "quantile-normal scaling" if enc.scaling == "quantile" else "standard scaling"
                steps = f"median imputation ({enc.median:.4g})" + (" + missing flag" if enc.flag_missing else "")
                steps += f"; {scaling}"
                if len(enc.edges) >= 2:
                    steps += f"; {len(enc.edges) - 1} piecewise-linear bins (decision-tree split points)"
            width = enc.width
        elif name in pipeline.categorical:
            enc = pipeline.categorical[name]
            steps = (
                f"vocabulary of {len(enc.categories)} categories (seen ≥ {enc.min_count} times); rare and unseen "
                "values → 'other', missing → its own bucket; learned embedding"
            )
            width = 1
        elif name in pipeline.text:
            enc = pipeline.text[name]
            steps = (
                f"{enc.tokenizer} tokenizer ({enc.reason}), vocabulary of {enc.cardinality} tokens, first "
                f"{enc.length} tokens ({enc.length_stats.get('percentile', 100):g}th percentile); text encoder"
            )
            width = enc.length
        else:
            steps, width = "dropped (not a feature)", 0
        out.append({"column": name, "role": spec.role, "why": spec.reason, "steps": steps, "width": str(width)})
    return out


def model_section(predictor) -> dict[str, Any]:
    """Layers and parameter counts."""
    model = predictor.model
    members = list(getattr(model, "members", [model]))
    first = members[0]
    layers = []
    for name, module in first.named_children():
        count = sum(p.numel() for p in module.parameters())
        layers.append({"name": name, "kind": type(module).__name__, "parameters": count, "detail": repr(module)})
    return {
        "name": predictor.config.model.name,
        "members": len(members),
        "parameters": sum(p.numel() for p in model.parameters()),
        "member_parameters": sum(p.numel() for p in first.parameters()),
        "layers": layers,
        "config": predictor.config.model.model_dump(),
        "optimizer": predictor.config.optimizer.model_dump(),
        "trainer": {k: v for k, v in predictor.config.trainer.model_dump().items() if k != "progress"},
    }


def classification_curves(class_names: list[Any], validation: dict[str, Any]) -> dict[str, Any]:
    """ROC/PR curves and calibration bins from the validation outputs stored at fit time."""
    from sklearn import metrics as skm

    y = np.asarray(validation["y"], dtype=int)
    proba = np.asarray(validation["proba"], dtype=float)
    classes = [str(c) for c in class_names]
    shown = [1] if len(classes) == 2 else list(range(len(classes)))[:10]
    curves = []
    for k in shown:
        truth = (y == k).astype(int)
        if truth.min() == truth.max():
            continue
        fpr, tpr, _ = skm.roc_curve(truth, proba[:, k])
        precision, recall, _ = skm.precision_recall_curve(truth, proba[:, k])
        curves.append(
            {
                "label": classes[k],
                "fpr": fpr,
                "tpr": tpr,
                "precision": precision,
                "recall": recall,
                "auc": skm.roc_auc_score(truth, proba[:, k]),
                "ap": skm.average_precision_score(truth, proba[:, k]),
            }
        )
    # calibration of the positive class (binary) or of the predicted class's probability (multiclass)
    if len(classes) == 2:
        p, hit, label = proba[:, 1], (y == 1).astype(float), classes[1]
    else:
        p, hit, label = proba.max(axis=1), (proba.argmax(axis=1) == y).astype(float), "the predicted class"
    edges = np.linspace(0, 1, 11)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, 9)
    bins = [
        {
            "low": float(edges[b]),
            "high": float(edges[b + 1]),
            "predicted": float(p[which == b].mean()),
            "observed": float(hit[which == b].mean()),
            "count": int((which == b).sum()),
        }
        for b in range(10)
        if (which == b).any()
    ]
    ece = float(sum(b["count"] * abs(b["predicted"] - b["observed"]) for b in bins) / max(len(p), 1))
    return {
        "roc_pr_png": plots.roc_pr(curves) if curves else None,
        "curves": [{"label": c["label"], "auc": c["auc"], "ap": c["ap"]} for c in curves],
        "calibration_png": plots.calibration(bins, label),
        "calibration_bins": bins,
        "ece": ece,
        "rows": validation["kept"],
    }


def residual_section(validation: dict[str, Any]) -> dict[str, Any]:
    y = np.asarray(validation["y"], dtype=float)
    pred = np.asarray(validation["pred"], dtype=float)
    resid = y - pred
    return {
        "png": plots.residuals(y, pred),
        "rows": validation["kept"],
        "mean": float(resid.mean()),
        "std": float(resid.std()),
        "p05": float(np.quantile(resid, 0.05)),
        "p95": float(np.quantile(resid, 0.95)),
    }


def importance_section(importance: dict[str, Any]) -> dict[str, Any]:
    columns = importance["columns"]
    what = (
        f"drop in {importance['metric']} when the column is shuffled"
        if importance["mode"] == "metric"
        else "mean change of the predictions when the column is shuffled"
    )
    png = plots.bars(
        [c["column"] for c in columns],
        [c["importance"] for c in columns],
        what,
        [c["std"] for c in columns],
    )
    return {**importance, "what": what, "png": png}


def example_rows(examples: list[dict[str, Any]], explained: dict[str, Any], target: str | None) -> list[dict]:
    """Each example: its values, prediction, and per-column attributions scaled for bar widths."""
    out = []
    for raw, row in zip(examples, explained["rows"], strict=True):
        attributions = row["attributions"]
        peak = max((abs(v) for v in attributions.values()), default=0.0) or 1.0
        cells = [
            {
                "column": name,
                "value": raw.get(name),
                "attribution": value,
                "width": round(48 * abs(value) / peak, 1),
                "sign": "pos" if value >= 0 else "neg",
            }
            for name, value in sorted(attributions.items(), key=lambda kv: -abs(kv[1]))
        ]
        words = {
            name: [{**t, "sign": "pos" if t["attribution"] >= 0 else "neg"} for t in strongest(tokens, TOKENS_SHOWN)]
            for name, tokens in row.get("tokens", {}).items()
        }
        out.append({**row, "actual": raw.get(target) if target else None, "cells": cells, "words": words})
    return out


def _validation_limit(training: dict[str, Any]) -> str:
    """Where the validation metrics come from: a split of the training source, or the --valid file."""
    rows = training.get("valid_rows", "?")
    if training.get("valid_source"):
        return (
            f"Metrics come from {rows} validation rows of {training['valid_source']}, which also chose the epoch "
            "(early stopping), so they are slightly optimistic; check them on fresh data with `deepmine evaluate`."
        )
    return (
        f"Metrics come from {rows} validation rows of the same source, not an independent test set; check them on "
        "fresh data with `deepmine evaluate`."
    )


def model_card(predictor, insight: dict[str, Any] | None) -> dict[str, Any]:
    """Intended use, data, metrics and known limits, written from what the run knows."""
    schema, training = predictor.schema, predictor.training
    features = [s.name for s in schema.features]
    valid = (predictor.metrics or {}).get("valid", {})
    limits = [
        f"Trained on {training.get('rows', '?')} rows from {training.get('source', 'the training data')}; "
        "rows unlike these (new categories, values outside the training range) get less reliable predictions: "
        "unseen categories fall into an 'other' bucket and numeric bins stop at the training minimum and maximum.",
        _validation_limit(training),
        "Associations are not causes: importance and attributions describe the model, not the world.",
    ]
    trees = training.get("trees")
    if trees and trees.get("weight"):
        regrown = (
            " The metrics (and any decision threshold) come from trees grown on the training rows; the saved trees "
            f"were then regrown on all {trees['regrown_on_rows']} rows, validation rows included, so they have seen "
            "more data."
            if "regrown_on_rows" in trees
            else ""
        )
        limits.append(
            f"The predictions blend the network with gradient-boosted trees ({trees['rounds']} LightGBM rounds, "
            f"weight {trees['weight']:g} chosen on validation).{regrown}"
        )
    target = (insight or {}).get("profile", {}).get("target") or {}
    balance = target.get("balance")
    if balance and min(balance.values()) < 0.2:
        rare = min(balance, key=balance.get)
        limits.append(
            f"Classes are imbalanced ('{rare}' is {balance[rare]:.1%} of rows): accuracy flatters the model; "
            "read balanced accuracy, recall and the precision-recall curve."
        )
    sensitive = [c for c in features if SENSITIVE.search(c)]
    if sensitive:
        limits.append(
            f"Columns that may describe protected groups ({', '.join(sensitive)}) are model inputs; the model has "
            "not been audited for fairness across groups, so do not use it for decisions about individuals "
            "without such a review."
        )
    task = schema.task
    return {
        "intended_use": (
            f"Predict '{schema.target}' ({task}"
            + (f": {', '.join(map(str, schema.classes))}" if task != "regression" else "")
            + f") from {len(features)} columns of tabular data shaped like the training data, for analysis "
            "and decision support."
        ),
        "data": (
            f"{training.get('source', 'training data')}: {training.get('rows', '?')} training and "
            f"{training.get('valid_rows', '?')} validation rows"
            f"{' from ' + training['valid_source'] if training.get('valid_source') else ''}; "
            f"inputs {', '.join(features)}."
        ),
        "metrics": {k: v for k, v in valid.items() if isinstance(v, float)},
        "limits": limits,
        "training": (
            f"{training.get('epochs', '?')} epochs (best {training.get('best_epoch', '?')}), "
            f"{training.get('seconds', 0):.1f} s, seed {predictor.config.seed}"
        ),
    }
