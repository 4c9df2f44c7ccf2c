"""`deepmine fit DATA --task tagging`, and `evaluate`/`predict` for tagger artifacts.

DATA: a CoNLL-style file (token [features...] tag per line, blank line between sentences) or JSONL with
``tokens``/``tags`` lists. Scores are conlleval's entity-level figures as fractions (conlleval prints percent).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def fit_command(
    data: str, out: Path | None, overrides: dict[str, Any], config: Path | None, valid: str | None, json_out: bool
) -> None:
    """Fit a BiLSTM-CRF tagger and save the artifact."""
    from deepmine.config import build_config
    from deepmine.exceptions import ConfigError
    from deepmine.io_utils import check_replaceable
    from deepmine.tagging.config import TaggingRunConfig
    from deepmine.tagging.fit import fit_tagger
    from deepmine.tagging.readers import read_tagged
    from deepmine.tracking import record_fit, tracked_fit

    overrides = dict(overrides)
    overrides.pop("task", None)
    overrides.pop("report.enabled", None)
    if "columns.target" in overrides:
        raise ConfigError("--target does not apply to --task tagging: the tag is the last column of each token line")
    run = build_config(config, overrides, schema=TaggingRunConfig, aliases={}, command="fit --task tagging")
    out = out or Path(f"{Path(data).name.split('.')[0]}-model")
    check_replaceable(out)  # before training, not when saving
    train = read_tagged(data)
    held = read_tagged(valid) if valid is not None else None
    predictor, tracker = tracked_fit(run, lambda: fit_tagger(train, run, held, where=str(data), valid_where=str(valid)))
    predictor.save(out)
    valid_scores = predictor.metrics["valid"]
    summary = {
        "artifact": str(out),
        "task": "tagging",
        "scheme": predictor.scheme,
        "types": predictor.types,
        "features": len(predictor.encoder.features),
        **{k: predictor.training[k] for k in ("sentences", "tokens", "valid_sentences", "epochs", "best_epoch")},
        "seconds": predictor.training["seconds"],
        **{k: valid_scores[k] for k in ("f1", "precision", "recall", "accuracy")},
        **record_fit(tracker, predictor, str(data), out),
    }
    if json_out:
        sys.stdout.write(json.dumps(summary) + "\n")
        return
    print(
        f"trained a BiLSTM-CRF tagger ({predictor.scheme.upper()}, types {', '.join(predictor.types)}) on "
        f"{summary['sentences']} sentences in {summary['seconds']:.1f} s; validation entity F1 "
        f"{summary['f1']:.4f}; artifact written to {out}",
        file=sys.stderr,
    )


def _load(artifact: Path):
    """The tagger, with torch on the threads it was trained with (small LSTMs lose time to more threads)."""
    import torch

    from deepmine.tagging.predictor import TaggerPredictor

    predictor = TaggerPredictor.load(artifact)
    if predictor.config.trainer.threads is not None:
        torch.set_num_threads(predictor.config.trainer.threads)
    return predictor


def evaluate_command(artifact: Path, data: str, json_out: bool) -> None:
    """conlleval figures (fractions) of the tagger on a tagged file."""
    from deepmine.data.sources import describe
    from deepmine.tagging.readers import read_tagged

    metrics = _load(artifact).score(read_tagged(data), describe(data))
    if json_out:
        sys.stdout.write(json.dumps(metrics) + "\n")
        return
    lines = [
        f"{metrics['sentences']} sentences, {metrics['entities']} entities ({metrics['scheme'].upper()}): "
        f"F1 {metrics['f1']:.4f}, precision {metrics['precision']:.4f}, recall {metrics['recall']:.4f}, "
        f"token accuracy {metrics['accuracy']:.4f}"
    ]
    for kind, row in metrics["per_type"].items():
        lines.append(
            f"  {kind}: F1 {row['f1']:.4f}, precision {row['precision']:.4f}, recall {row['recall']:.4f} "
            f"({row['support']})"
        )
    print("\n".join(lines), file=sys.stderr)


def predict_command(
    artifact: Path,
    data: str,
    output: Path | None,
    id_column: str | None = None,
    text_column: str | None = None,
    read: Any = None,
) -> None:
    """Tag every sentence of DATA. A CoNLL/JSONL/text file gives one JSON line per sentence (tokens, tags and
    entities [{type, start, end, text}], end exclusive); a table (CSV/TSV/Parquet/SQL) tags one text column, a
    row per sentence, written as JSON lines or — for a CSV/TSV/Parquet ``output`` — as a table."""
    from deepmine.exceptions import ConfigError
    from deepmine.tagging.tables import is_table_source, read_table_texts

    predictor = _load(artifact)
    features = predictor.state.get("file_features", len(predictor.encoder.features))
    ids = None
    if is_table_source(data, None if text_column is not None else features):  # CoNLL named .tsv stays CoNLL
        table = read_table_texts(data, read, text_column, id_column)
        rows = predictor.predict(table.texts)
        ids = table.ids
    elif id_column is not None or text_column is not None:
        flag = "--id" if id_column is not None else "--column"
        raise ConfigError(f"{flag} applies to tables (CSV/TSV/Parquet/SQL); '{data}' is read as sentences")
    else:
        rows = predictor.predict(Path(data))
    _write_tagged(rows, output, id_column, ids)


def _write_tagged(rows: list[dict[str, Any]], output: Path | None, id_column: str | None, ids: Any) -> None:
    """JSON lines (stdout, .jsonl) or a table of space-joined tokens/tags and the entities as JSON."""
    import pandas as pd

    from deepmine.batch import atomic_output, is_gzip_name, table_kind, write_predictions
    from deepmine.report.build import write_text_atomic

    if ids is not None:
        rows = [{id_column: value, **row} for value, row in zip(ids.tolist(), rows, strict=True)]
    if output is not None and table_kind(output) in ("csv", "tsv", "parquet"):
        frame = pd.DataFrame(
            {
                **({id_column: ids.to_numpy()} if ids is not None else {}),
                "tokens": [" ".join(r["tokens"]) for r in rows],
                "tags": [" ".join(r["tags"]) for r in rows],
                "entities": [json.dumps(r["entities"], ensure_ascii=False) for r in rows],
            }
        )
        write_predictions(iter([frame]), output)
    else:
        text = "".join(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)
        if output is None:
            sys.stdout.write(text)
            return
        if is_gzip_name(output):
            import gzip

            with atomic_output(output) as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as packed:
                packed.write(text.encode("utf-8"))
        else:
            write_text_atomic(output, text)
    print(f"wrote {len(rows)} tagged sentences to {output}", file=sys.stderr)
