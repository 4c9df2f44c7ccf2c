"""`deepmine --help` stays instant: it must not import the heavy libraries."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "sklearn", "pandas", "scipy", "pyarrow", "sqlalchemy")


def test_help_imports_no_heavy_library():
    code = (
        "import sys\n"
        "from deepmine.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print('LOADED:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    *help_lines, loaded = done.stdout.strip().splitlines()
    assert loaded == "LOADED:", f"--help imported {loaded}"
    text = "\n".join(help_lines)
    for command in ("profile", "fit", "evaluate", "predict", "demo"):
        assert command in text


def test_flags_are_listed_without_a_bool_type():
    import typer
    from typer.testing import CliRunner

    from deepmine.cli import app

    commands = typer.main.get_command(app).commands
    for name in ["", *commands]:
        done = CliRunner().invoke(app, [name, "--help"] if name else ["--help"], env={"COLUMNS": "200"})
        assert done.exit_code == 0, done.output
        assert "<bool>" not in done.output, f"deepmine {name} --help:\n{done.output}"
    fit_help = CliRunner().invoke(app, ["fit", "--help"], env={"COLUMNS": "200"}).output
    flags = {line.split()[1] for line in fit_help.splitlines() if line.startswith("│ --")}
    assert {"--json", "--no-report", "--resume", "--no-header", "--help"} <= flags
    seed = next(line for line in fit_help.splitlines() if line.startswith("│ --seed "))
    assert "<int>" in seed  # an option that takes a value keeps its type
