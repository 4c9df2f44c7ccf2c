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
