"""Option and argument declarations shared by the `deepmine` commands (Typer has no option groups)."""

from __future__ import annotations

from typing import Annotated

import typer

DataArg = Annotated[str, typer.Argument(help="A CSV/TSV/Parquet/JSONL file or a SQLAlchemy URL (sqlite:///f.db).")]
SepOpt = Annotated[str | None, typer.Option("--sep", help="Delimiter (sniffed when omitted).")]
EncodingOpt = Annotated[str | None, typer.Option("--encoding", help="Text encoding (sniffed when omitted).")]
NoHeaderOpt = Annotated[bool, typer.Option("--no-header", help="The first row is data, not column names.")]
TableOpt = Annotated[str | None, typer.Option("--table", help="SQL table to read.")]
QueryOpt = Annotated[str | None, typer.Option("--query", help="SQL query to read.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
