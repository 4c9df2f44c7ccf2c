"""The HTML report written by `fit` and `deepmine report`, the insight stored in the artifact, `profile --html`."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from conftest import FAST, make_table

from deepmine.artifact import load_predictor
from deepmine.exceptions import ArtifactError
from deepmine.report.build import PROFILE_IDS, SECTION_IDS

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)
SMALL = [*FAST, "--set", "trainer.epochs=6", "--set", "model.ensemble=2"]


def assert_self_contained(html: str) -> None:
    assert not EXTERNAL.search(html), EXTERNAL.search(html).group(0)
    for attr in re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", html):
        assert "http://" not in attr and "https://" not in attr
        assert attr.startswith(("data:image/png;base64,", "#")), attr[:40]


def assert_sections(html: str, ids) -> None:
    for element_id in ids:
        assert f'id="{element_id}"' in html, element_id


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A binary artifact fitted through the CLI (report on by default)."""
    from deepmine.cli import main

    folder = tmp_path_factory.mktemp("report")
    make_table(240).to_csv(folder / "table.csv", index=False)
    try:
        main(["fit", str(folder / "table.csv"), "--target", "label", "--out", str(folder / "model"), *SMALL])
    except SystemExit as done:
        assert not done.code
    return folder


def test_fit_writes_a_self_contained_report(fitted):
    html = (fitted / "model" / "report.html").read_text(encoding="utf-8")
    assert_sections(html, [*SECTION_IDS.values(), *PROFILE_IDS])
    assert_self_contained(html)
    assert "<script" not in html
    assert html.count("data:image/png;base64,") >= 8  # distributions, balance, correlations, curves, ...
    for text in ("Integrated Gradients", "Permutation importance", "Known limits", "parameters"):
        assert text in html


def test_insight_is_checksummed_and_loaded(fitted):
    folder = fitted / "model"
    assert "insight.json" in (folder / "checksum.sha256").read_text()
    predictor = load_predictor(folder)
    insight = predictor.insight
    assert {"profile", "validation", "examples", "importance", "baseline_modes"} <= set(insight)
    assert len(insight["validation"]["y"]) == len(insight["validation"]["proba"]) == insight["validation"]["kept"]
    assert len(insight["examples"]) == 5


def test_tampered_insight_is_refused(fitted, tmp_path):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(fitted / "model", copy)
    data = json.loads((copy / "insight.json").read_text())
    data["examples"] = []
    (copy / "insight.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="insight.json does not match its checksum"):
        load_predictor(copy)


def test_report_command_rewrites_the_report(run_cli, fitted, tmp_path):
    out = tmp_path / "again.html"
    result = run_cli("report", fitted / "model", "-o", out, "--json")
    assert result.code == 0, result.err
    payload = json.loads(result.out)
    assert payload["path"] == str(out) and payload["sections"] == list(SECTION_IDS.values())
    assert_sections(out.read_text(encoding="utf-8"), SECTION_IDS.values())


def test_no_report_skips_report_and_insight_but_report_still_renders(run_cli, tmp_path):
    make_table(120).to_csv(tmp_path / "t.csv", index=False)
    args = ("fit", tmp_path / "t.csv", "--target", "label", "--out", tmp_path / "m", *FAST, "--set", "trainer.epochs=2")
    assert run_cli(*args, "--no-report", "--json").code == 0
    assert not (tmp_path / "m" / "report.html").exists()
    assert not (tmp_path / "m" / "insight.json").exists()
    result = run_cli("report", tmp_path / "m")
    assert result.code == 0, result.err
    html = (tmp_path / "m" / "report.html").read_text(encoding="utf-8")
    assert_sections(html, SECTION_IDS.values())
    assert "holds no data profile" in html


def test_regression_report_has_residuals(run_cli, tmp_path):
    make_table(160, task="regression").to_csv(tmp_path / "r.csv", index=False)
    make_table(40, seed=5, task="regression").to_csv(tmp_path / "holdout.csv", index=False)
    args = ("fit", tmp_path / "r.csv", "--target", "label", "--out", tmp_path / "m", *FAST)
    args = (*args, "--valid", tmp_path / "holdout.csv")
    assert run_cli(*args, "--set", "trainer.epochs=3", "--set", "report.examples=2", "--json").code == 0
    html = (tmp_path / "m" / "report.html").read_text(encoding="utf-8")
    assert "40 validation rows from" in html and "holdout.csv" in html  # the card names the --valid file
    assert "of the same source" not in html
    assert_sections(html, SECTION_IDS.values())
    assert 'alt="residual plots"' in html
    assert "Applies to classifiers" in html


def test_profile_html(run_cli, table_csv, tmp_path):
    out = tmp_path / "profile.html"
    result = run_cli("profile", table_csv, "--target", "label", "--html", out, "--json")
    assert result.code == 0, result.err
    assert "distributions" not in json.loads(result.out)  # the JSON contract is unchanged by --html
    html = out.read_text(encoding="utf-8")
    assert_sections(html, [SECTION_IDS["profile"], *PROFILE_IDS])
    assert_self_contained(html)
    assert 'alt="distribution of each column"' in html and 'alt="correlation matrix"' in html


def test_multilabel_report_explains_its_example_rows():
    from test_multilabel import keyword_texts

    import deepmine
    from deepmine.report.build import render_report

    texts, labels = keyword_texts(200)
    frame = pd.DataFrame({"text": texts, "topics": ["|".join(ls) for ls in labels]})
    quick = {"trainer.epochs": 4, "trainer.threads": 1, "tracking.enabled": False}
    model = deepmine.fit(frame, target="topics", task="multilabel", **quick)
    html = render_report(model)
    assert "No example rows recorded" not in html  # the artifact has them: they are explained, not denied
    examples = model.insight["examples"]
    assert html.count("<p><b>row ") == len(examples) > 0
    assert html.count('<p class="tokens">text, strongest tokens') == len(examples)
    first = "|".join(model.predict(pd.DataFrame.from_records(examples[:1]))[0]) or "(no label)"
    assert f"<p><b>row 1</b>: predicted <b>{first}</b> (actual {examples[0]['topics']})" in html
