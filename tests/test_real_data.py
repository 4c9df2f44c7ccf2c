"""A small slice of a real shared dataset through the CLI, read raw (no header, ', ' separators)."""

from __future__ import annotations

import json

import pytest
from conftest import DATA_ROOT, FAST

ADULT = DATA_ROOT / "adult"
pytestmark = pytest.mark.skipif(not (ADULT / "adult.data").exists(), reason=f"no Adult data under {DATA_ROOT}")


def test_raw_adult_slice_fits_and_scores(run_cli, tmp_path):
    train = tmp_path / "adult_slice.data"
    train.write_text("".join((ADULT / "adult.data").read_text().splitlines(keepends=True)[:3000]))
    test_lines = (ADULT / "adult.test").read_text().splitlines(keepends=True)[:1501]  # a '|' note, then rows
    test = tmp_path / "adult_slice.test"
    test.write_text("".join(line.replace(".\n", "\n") for line in test_lines))
    out = tmp_path / "model"
    fit = run_cli("fit", train, "--target", "column_15", "--out", out, "--json", *FAST)
    assert fit.code == 0, fit.err
    assert json.loads(fit.out)["task"] == "binary"
    scored = run_cli("evaluate", out, test, "--json")
    assert scored.code == 0, scored.err
    metrics = json.loads(scored.out)
    assert metrics["rows"] == 1500
    assert metrics["accuracy"] > 0.8 and metrics["roc_auc"] > 0.85
