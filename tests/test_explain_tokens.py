"""Token attributions of text columns: each token's effect equals the prediction without it, in the API, the
`explain` command and the HTML report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_text import QUICK, chinese_reviews, fitted, reviews  # noqa: F401  (fitted is a fixture)

import deepmine
from deepmine.explain import token_attributions
from deepmine.explain.tokens import add_token_attributions


def _without(tokens: list[str], i: int, joiner: str) -> str:
    return joiner.join(tokens[:i] + tokens[i + 1 :])


def test_each_token_scores_the_prediction_minus_the_prediction_without_it(fitted):  # noqa: F811
    frame = reviews(3, 11)[["review"]]
    proba = fitted.predict_proba(frame)
    tokens = token_attributions(fitted, frame)
    encoder = fitted.pipeline.text["review"]
    for row, scores in enumerate(tokens):
        units = encoder.units(frame["review"][row])
        assert [t for t, _ in scores["review"]] == units
        explained = int(proba[row].argmax())
        variants = pd.DataFrame({"review": [_without(units, i, " ") for i in range(len(units))]})
        expected = proba[row, explained] - fitted.predict_proba(variants)[:, explained]
        np.testing.assert_allclose([s for _, s in scores["review"]], expected, atol=1e-5)


def test_the_sentiment_words_are_the_strongest_tokens(fitted):  # noqa: F811
    frame = reviews(30, 12)
    predicted = fitted.predict(frame)
    sentiment_words = {"great", "wonderful", "loved", "superb", "enjoyable", "brilliant"}
    sentiment_words |= {"awful", "boring", "hated", "dreadful", "terrible", "dull"}
    checked = 0
    for row, scores in enumerate(token_attributions(fitted, frame[["review"]])):
        units = [t for t, _ in scores["review"]]
        sentiment = [t for t in units if t in sentiment_words]
        if predicted[row] != frame["sentiment"][row] or len(set(sentiment)) < 2:
            continue  # a word said twice still counts once when one copy is left out
        checked += 1
        top = sorted(scores["review"], key=lambda pair: -abs(pair[1]))[:2]
        assert {t for t, _ in top} == set(sentiment), (frame["review"][row], scores)
        assert all(s > 0 for _, s in top)  # they support the predicted class
    assert checked >= 15


def test_tokens_the_model_cannot_tell_apart_score_exactly_zero(fitted):  # noqa: F811
    frame = pd.DataFrame({"review": ["zzqx blorf quuxx", "great zzqx wonderful"]})
    unknown, mixed = token_attributions(fitted, frame)
    assert unknown["review"] == [("zzqx", 0.0), ("blorf", 0.0), ("quuxx", 0.0)]  # not float32 noise like 5.96e-08
    assert dict(mixed["review"])["great"] > 0.01  # real effects are kept


def test_empty_and_huge_texts(fitted):  # noqa: F811
    frame = pd.DataFrame({"review": ["", "great wonderful " * 65_536]})  # the second is 1 MiB
    empty, huge = token_attributions(fitted, frame)
    assert empty["review"] == []
    length = fitted.pipeline.text["review"].length
    assert len(huge["review"]) == length  # only what the model reads is left out, one token at a time
    assert all(np.isfinite(s) for _, s in huge["review"])


@pytest.fixture(scope="module")
def chinese():
    return deepmine.fit(chinese_reviews(), target="y", columns={"roles": {"评论": "text"}}, **QUICK)


def test_a_chinese_word_goes_with_its_characters(chinese):
    model = chinese
    encoder = model.pipeline.text["评论"]
    assert encoder.tokenizer == "jieba" and encoder.chars
    frame = pd.DataFrame({"评论": ["房间干净满意，服务糟糕"]})
    (scores,) = token_attributions(model, frame)
    units = encoder.units(frame["评论"][0])
    proba = model.predict_proba(frame)[0]
    explained = int(proba.argmax())
    variants = pd.DataFrame({"评论": [_without(units, i, "") for i in range(len(units))]})
    expected = proba[explained] - model.predict_proba(variants)[:, explained]
    np.testing.assert_allclose([s for _, s in scores["评论"]], expected, atol=1e-5)


def test_a_huge_text_s_variants_carry_only_what_the_model_reads(chinese, monkeypatch):
    encoder = chinese.pipeline.text["评论"]
    frame = pd.DataFrame({"评论": ["酒店干净满意，服务糟糕失望。" * 4000]})  # 56,000 characters, ~28,000 tokens
    carried = []
    transform_units = encoder.transform_units
    monkeypatch.setattr(
        encoder, "transform_units", lambda rows: carried.append(max(map(len, rows))) or transform_units(rows)
    )
    (scores,) = token_attributions(chinese, frame)
    assert max(carried) <= 2 * encoder.length + 1  # not the whole text once per variant (minutes for 1 MB)
    units = encoder.units(frame["评论"][0])
    assert [t for t, _ in scores["评论"]] == units[: encoder.length]
    proba = chinese.predict_proba(frame)[0]
    explained = int(proba.argmax())
    variants = pd.DataFrame({"评论": [_without(units, i, "") for i in range(encoder.length)]})
    expected = proba[explained] - chinese.predict_proba(variants)[:, explained]
    np.testing.assert_allclose([s for _, s in scores["评论"]], expected, atol=1e-5)


def test_tables_without_text_get_no_tokens():
    from conftest import make_table

    frame = make_table(120, seed=0, task="binary").drop(columns="note")
    model = deepmine.fit(frame, target="label", **QUICK)
    explained = {"rows": [{"row": 1}]}
    assert add_token_attributions(model, frame.head(1), explained, "the data") == {"rows": [{"row": 1}]}


def test_explain_shows_the_strongest_tokens(run_cli, fitted, tmp_path):  # noqa: F811
    fitted.save(tmp_path / "model")
    frame = reviews(4, 13)
    frame.to_csv(tmp_path / "rows.csv", index=False)
    args = ("explain", tmp_path / "model", tmp_path / "rows.csv", "--rows", 2)
    people, as_json = run_cli(*args), run_cli(*args, "--json")
    assert people.code == as_json.code == 0, people.err + as_json.err
    rows = json.loads(as_json.out)["attributions"]["rows"]
    first = rows[0]["tokens"]["review"]
    assert [t["position"] for t in first] == list(range(1, len(first) + 1))
    assert [t["token"] for t in first] == fitted.pipeline.text["review"].units(frame["review"][0])
    strongest = max(first, key=lambda t: abs(t["attribution"]))
    lines = [line for line in people.err.splitlines() if line.startswith("  review: ")]
    assert len(lines) == 2
    assert lines[0].startswith(f"  review: '{strongest['token']}' {strongest['attribution']:+.3g}")


def test_report_examples_show_tokens_and_count_rows_from_one(fitted, tmp_path):  # noqa: F811
    from deepmine.report.build import render_report

    html = render_report(fitted)
    assert "<p><b>row 1</b>" in html and "<p><b>row 0</b>" not in html
    assert html.count('<p class="tokens">review, strongest tokens') == len(fitted.insight["examples"])
    assert '<span class="token pos">' in html
