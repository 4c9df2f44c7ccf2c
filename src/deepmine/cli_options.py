"""Option and argument declarations shared by the `deepmine` commands (Typer has no option groups)."""

from __future__ import annotations

from typing import Annotated, Any

import typer


def flags_without_type() -> None:
    """Make --help list a flag with no type: Typer 0.29 writes ``<bool>`` after every flag (``--json <bool>``,
    even ``--help <bool>``), as if it took a value. Options that take a value keep their ``<int>``, ``<str>`` ..."""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)  # older Typers show flags without a type already
    if shown is None or getattr(shown, "flags_without_type", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if getattr(self, "is_bool_flag", False) else shown(self, ctx)

    display_type_rich.flags_without_type = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


DataArg = Annotated[str, typer.Argument(help="A CSV/TSV/Parquet/JSONL file or a SQLAlchemy URL (sqlite:///f.db).")]
SepOpt = Annotated[str | None, typer.Option("--sep", help="Delimiter (sniffed when omitted).")]
EncodingOpt = Annotated[str | None, typer.Option("--encoding", help="Text encoding (sniffed when omitted).")]
NoHeaderOpt = Annotated[bool, typer.Option("--no-header", help="The first row is data, not column names.")]
TableOpt = Annotated[str | None, typer.Option("--table", help="SQL table to read.")]
QueryOpt = Annotated[str | None, typer.Option("--query", help="SQL query to read.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
