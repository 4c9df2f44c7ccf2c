"""`deepmine anomalies` and `deepmine cluster`.

Registered on the Typer app in :mod:`deepmine.cli`; heavy modules are imported inside the functions so
`deepmine --help` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deepmine.cli_options import DataArg, EncodingOpt, JsonOpt, NoHeaderOpt, QueryOpt, SepOpt, TableOpt

SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for everything (same seed = same result).")]
IdOpt = Annotated[str | None, typer.Option("--id", help="Column that identifies rows (kept in the output).")]


def _cli():
    from deepmine import cli

    return cli


def _data_config(sep, encoding, no_header, table, query):
    from deepmine.config import DataConfig

    overrides = _cli()._read_overrides(sep, encoding, no_header, table, query)
    return DataConfig(**{key.split(".", 1)[1]: value for key, value in overrides.items()})


CLUSTER_FILES = ("clusters.csv", "map.png")


def _check_cluster_out(out: Path | None) -> None:
    """Before any work: ``--out`` must be a new folder, an empty one, or an earlier cluster output (only
    clusters.csv and map.png), never a file or a folder of the user's own files (exit 1, as `fit --out`)."""
    from deepmine.exceptions import DataError

    if out is None or not out.exists():
        return
    if not out.is_dir():
        raise DataError(f"--out '{out}' is a file; cluster writes a folder ({', '.join(CLUSTER_FILES)}): name one")
    others = sorted(p.name for p in out.iterdir() if p.name not in CLUSTER_FILES and not p.name.startswith("."))
    if others:
        raise DataError(
            f"--out '{out}' holds files cluster did not write ({', '.join(others[:3])}); choose a new or empty folder"
        )


def anomalies(
    data: DataArg,
    detector: Annotated[
        str,
        typer.Option(
            "--detector",
            help="deepmine (default: a rank ensemble of Isolation Forest and ECOD), autoencoder, isolation_forest, "
            "knn, lstm_autoencoder (one series per row), lof, ecod, copod, hbos, pca, ocsvm.",
        ),
    ] = "deepmine",
    contamination: Annotated[
        float | None, typer.Option("--contamination", help="Expected share of anomalies in (0, 0.5]; default 0.05.")
    ] = None,
    percentile: Annotated[
        float | None, typer.Option("--percentile", help="Flag rows scoring above this percentile instead.")
    ] = None,
    label: Annotated[
        str | None,
        typer.Option("--label", help="Column marking known anomalies: scores the ranking (not used to fit)."),
    ] = None,
    positive: Annotated[
        str | None, typer.Option("--positive", help="The --label value of anomalies (default 1, else the rarest).")
    ] = None,
    fit_normal: Annotated[
        str | None,
        typer.Option("--fit-normal", help="Fit only on rows whose --label has this value (the normal ones)."),
    ] = None,
    id_column: IdOpt = None,
    top: Annotated[int, typer.Option("--top", help="Ranked rows shown (and in the JSON).", min=0)] = 10,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Table to write (CSV, TSV, Parquet or JSONL): every row ranked, with score and top columns.",
        ),
    ] = None,
    seed: SeedOpt = 42,
    json_out: JsonOpt = False,
    sep: SepOpt = None,
    encoding: EncodingOpt = None,
    no_header: NoHeaderOpt = False,
    table: TableOpt = None,
    query: QueryOpt = None,
) -> None:
    """Score every row of DATA for how anomalous it is, flag the top share and name the columns behind each score."""
    from deepmine.batch import check_prediction_output, write_predictions
    from deepmine.data.sources import check_sql_options, load_table
    from deepmine.unsupervised.anomalies import check_contamination, detect_anomalies

    check_sql_options(data, table, query)
    check_contamination(contamination, percentile)
    check_prediction_output(out, data)
    config = _data_config(sep, encoding, no_header, table, query)
    result = detect_anomalies(
        data,
        detector=detector,
        contamination=contamination,
        percentile=percentile,
        label=label,
        positive=positive,
        fit_normal=fit_normal,
        id_column=id_column,
        seed=seed,
        data_config=config,
    )
    summary = result.summary(top)
    if out is not None:
        frame = load_table(data, config, verbatim=id_column) if id_column else None
        write_predictions(iter([result.table(frame, id_column) if frame is not None else result.table(None)]), out)
        summary["out"] = str(out)
    if json_out:
        _cli()._emit_json(summary)
        return
    from rich.table import Table

    console = _cli()._stderr()
    view = Table(title=f"most anomalous rows ({detector}; {summary['flagged']} of {summary['rows']} flagged)")
    for heading in ("row", "score", "flagged", f"top columns ({summary['contributions']})"):
        view.add_column(heading)
    for item in summary["top"]:
        shown = ", ".join(f"{c['column']} {c['share']:.0%}" for c in item["columns"])
        view.add_row(str(item["row"]), f"{item['score']:.4g}", "yes" if item["anomaly"] else "", shown)
    console.print(view)
    if result.metrics:
        console.print(_cli()._metrics_table(f"against '{label}'", result.metrics))
    if out is not None:
        console.print(f"ranked rows written to [bold]{out}[/]")


def cluster(
    data: DataArg,
    k: Annotated[str, typer.Option("--k", help="Number of clusters, or 'auto' (chosen by silhouette).")] = "auto",
    method: Annotated[
        str, typer.Option("--method", help="n2d (autoencoder → UMAP → k-means/GMM) or dec (k-means + DEC).")
    ] = "n2d",
    label: Annotated[
        str | None, typer.Option("--label", help="Column of known groups: scores the clustering (not used to fit).")
    ] = None,
    id_column: IdOpt = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder to write: clusters.csv (a cluster per row) and map.png."),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", help="Autoencoder epochs (auto when omitted).", min=1)
    ] = None,
    seed: SeedOpt = 42,
    json_out: JsonOpt = False,
    sep: SepOpt = None,
    encoding: EncodingOpt = None,
    no_header: NoHeaderOpt = False,
    table: TableOpt = None,
    query: QueryOpt = None,
) -> None:
    """Group the rows of DATA: a learned embedding, clustered; sizes, per-cluster profiles and a 2-D map.
    DATA may also be images (class folders, IDX/NPZ, a table of image paths): a convolutional autoencoder
    embeds them, and --label (any value, e.g. `--label folder`) scores against the class folders / IDX labels."""
    import pandas as pd

    from deepmine.data.sources import check_sql_options, load_table
    from deepmine.images.sources import is_image_source
    from deepmine.unsupervised.cluster import cluster_table

    check_sql_options(data, table, query)
    _check_cluster_out(out)
    config = _data_config(sep, encoding, no_header, table, query)
    map_path = out / "map.png" if out is not None else None
    names = None
    if is_image_source(data):  # class folders, IDX/NPZ files, a table of image paths: convolutional autoencoder
        from deepmine.unsupervised.image_cluster import cluster_images

        result, names = cluster_images(
            data, k, method=method, label=label, seed=seed, epochs=epochs, map_path=map_path, read=config
        )
    else:
        result = cluster_table(
            data,
            k,
            method=method,
            label=label,
            id_column=id_column,
            seed=seed,
            epochs=epochs,
            map_path=map_path,
            data_config=config,
        )
    summary = result.summary()
    if out is not None:
        rows = pd.DataFrame({"row": range(len(result.clusters)), "cluster": result.clusters})
        if names is not None:
            rows.insert(1, "image", names)
        elif id_column:
            rows.insert(1, id_column, load_table(data, config, verbatim=id_column)[id_column].to_numpy())
        from deepmine.batch import write_predictions

        write_predictions(iter([rows]), out / "clusters.csv")
        summary["out"] = str(out)
    if json_out:
        _cli()._emit_json(summary)
        return
    console = _cli()._stderr()
    console.print(f"{summary['rows']} rows in {result.k} clusters ({method}): sizes {result.sizes}")
    for profile in result.profiles:
        parts = []
        for f in profile["features"]:
            if "value" in f:
                parts.append(f"{f['column']} = {f['value']} ({f['share']:.0%} vs {f['overall']:.0%})")
            else:
                parts.append(f"{f['column']} {f['mean']:.4g} vs {f['overall']:.4g}")
        console.print(f"  cluster {profile['cluster']} ({profile['size']} rows): " + "; ".join(parts), highlight=False)
    if result.metrics:
        console.print(_cli()._metrics_table(f"against '{label}'", result.metrics))
    if out is not None:
        console.print(f"clusters and map written to [bold]{out}[/]")
