"""`deepmine embed` (train word vectors on your texts) and `deepmine neighbors` (nearest words in a file)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer


def embed(
    corpus: Annotated[
        str, typer.Argument(help="A .txt file (one document per line), a folder of .txt files, or a table.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Vectors file to write (word2vec text; .gz gzips).")],
    dim: Annotated[int, typer.Option("--dim", help="Vector size.", min=1)] = 100,
    window: Annotated[int, typer.Option("--window", help="Context words on each side.", min=1)] = 5,
    min_count: Annotated[int, typer.Option("--min-count", help="Drop words seen fewer times.", min=1)] = 2,
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the corpus.", min=1)] = 5,
    method: Annotated[str, typer.Option("--method", help="skipgram or cbow.")] = "skipgram",
    column: Annotated[
        str | None, typer.Option("--column", help="Text column of a table (default: its single text column).")
    ] = None,
    tokenizer: Annotated[
        str, typer.Option("--tokenizer", help="auto (jieba for Chinese, else word), word, jieba, char, bpe, wordpiece.")
    ] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same vectors (with one worker).")] = 0,
    workers: Annotated[
        int, typer.Option("--workers", help="Training threads; more is faster but no longer reproducible.", min=1)
    ] = 1,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Train word vectors (gensim Word2Vec) on your own texts and write them in the word2vec text format."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from deepmine.text.embed import train_vectors

    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # logs get the status lines only
    ) as progress:
        task = progress.add_task("reading the corpus", total=epochs)

        def on_stage(message: str) -> None:
            progress.update(task, description=message)
            console.print(message, highlight=False, soft_wrap=True)

        def on_epoch(done: int, total: int) -> None:
            progress.update(task, completed=done, description=f"epoch {done}/{total}")

        result = train_vectors(
            corpus,
            dim=dim,
            window=window,
            min_count=min_count,
            epochs=epochs,
            method=method,
            column=column,
            tokenizer=tokenizer,
            seed=seed,
            workers=workers,
            on_epoch=on_epoch,
            on_stage=on_stage,
        )
    result.vectors.save(out)
    summary = {
        "output": str(out),
        "words": len(result.vectors),
        "dim": result.vectors.dim,
        "documents": result.documents,
        "tokens": result.tokens,
        "tokenizer": result.tokenizer,
        "method": method,
        "seconds": round(result.seconds, 2),
    }
    if json_out:
        sys.stdout.write(json.dumps(summary) + "\n")
        return
    console.print(
        f"{summary['words']:,} words × {summary['dim']} dims from {summary['tokens']:,} tokens in "
        f"{summary['seconds']:.1f} s; written to {out}",
        highlight=False,
        soft_wrap=True,
    )


def neighbors(
    vectors: Annotated[Path, typer.Argument(help="A word2vec/GloVe text-format file (.gz too).")],
    word: Annotated[str, typer.Argument(help="The word to look up.")],
    k: Annotated[int, typer.Option("-k", "--k", help="How many neighbours.", min=1)] = 10,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """The K words nearest to WORD by cosine similarity in a word-vectors file (a word missing in this casing is
    looked up lower-cased, then in its most frequent casing, and the CLI says which word it used)."""
    from deepmine.text.vectors import load_vectors

    loaded = load_vectors(vectors)
    row = loaded.lookup(word)
    if row is not None and loaded.words[row] != word:
        print(f"'{word}' is not in {vectors}; showing the neighbours of '{loaded.words[row]}'", file=sys.stderr)
        word = loaded.words[row]
    found = loaded.nearest(word, k)
    if json_out:
        result = {"word": word, "neighbors": [{"word": w, "similarity": round(s, 6)} for w, s in found]}
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"nearest to '{escape(word)}'")
    table.add_column("word")
    table.add_column("cosine", justify="right")
    for w, s in found:
        table.add_row(escape(w), f"{s:.4f}")
    Console(stderr=True).print(table)
