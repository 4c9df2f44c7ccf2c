"""Text: tokenizers, column encoding, n-grams, encoders, batches, text tables end to end, edge-case inputs."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import deepmine
from deepmine.cli import app
from deepmine.config import TextConfig, build_config
from deepmine.exceptions import ConfigError, DeepmineWarning
from deepmine.text.batches import LengthBuckets
from deepmine.text.column import TextColumnEncoder
from deepmine.text.encoders import build_text_encoder
from deepmine.text.ngrams import NgramTable, lookup, ngram_keys, row_folds
from deepmine.text.tokenizers import choose_tokenizer, make_tokenizer, tokenizer_from_state

POSITIVE = ["great", "wonderful", "loved", "superb", "enjoyable", "brilliant"]
NEGATIVE = ["awful", "boring", "hated", "dreadful", "terrible", "dull"]
FILLER = ["the", "movie", "plot", "actor", "film", "scene", "was", "and", "it", "a", "story", "music"]
QUICK = {"trainer.epochs": 6, "trainer.threads": 1, "report.enabled": False, "tracking.enabled": False}


def reviews(n: int, seed: int) -> pd.DataFrame:
    """Short synthetic reviews: filler words plus two words from the label's sentiment list."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        words = list(rng.choice(FILLER, 6)) + list(rng.choice(POSITIVE if label == "pos" else NEGATIVE, 2))
        rng.shuffle(words)
        rows.append({"review": " ".join(words) + rng.choice([".", "!", " ..."]), "sentiment": label})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def fitted():
    from deepmine.tasks.supervised import fit_table

    config = build_config(None, {"columns.target": "sentiment", **QUICK, "report.enabled": True})
    return fit_table(reviews(240, 0), config)  # with the report's insight (explanations of a text column)


# ---- tokenizers ----------------------------------------------------------------------------------
def test_word_tokenizer_splits_punctuation_and_keeps_contractions():
    tokens = make_tokenizer("word")("I DON'T like it, really!! 🙂 Ｆｕｌｌ-width")
    assert tokens == ["i", "don't", "like", "it", ",", "really", "!", "!", "🙂", "full", "-", "width"]


def test_char_tokenizer_drops_spaces():
    assert make_tokenizer("char")("Ab c") == ["a", "b", "c"]


def test_default_tokenizer_follows_the_script():
    chinese = ["这家酒店的服务非常好，房间也很干净。", "位置不错但是早餐很一般"] * 5
    assert choose_tokenizer(chinese)[0] == "jieba"
    assert choose_tokenizer(["a fine hotel with a good breakfast"] * 5)[0] == "word"
    name, reason = choose_tokenizer(["English words 和一点中文"])
    assert name == "word" and "CJK" in reason


def test_jieba_is_quiet_deterministic_and_segments_words(capfd):
    first = make_tokenizer("jieba")("我们喜欢这家酒店 wifi OK!")
    second = make_tokenizer("jieba")("我们喜欢这家酒店 wifi OK!")
    assert first == second
    assert "酒店" in first and "wifi" in first and "!" in first
    assert "Building prefix dict" not in capfd.readouterr().err


@pytest.mark.parametrize("name", ["bpe", "wordpiece"])
def test_subword_tokenizer_learns_on_training_texts_and_round_trips(name):
    texts = [" ".join(words) for words in (POSITIVE, NEGATIVE, FILLER)] * 20
    tokenizer = make_tokenizer(name, vocab_size=120).fit(texts)
    restored = tokenizer_from_state(json.loads(json.dumps(tokenizer.state())))
    sample = "wonderfully boring superbness"
    assert restored(sample) == tokenizer(sample)
    assert len(tokenizer(sample)) > 3  # unseen words are split into learnt pieces


def test_unknown_tokenizer_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown tokenizer 'wrod'.*did you mean 'word'"):
        make_tokenizer("wrod")


# ---- column encoder ------------------------------------------------------------------------------
def test_column_encoder_length_from_percentile_and_unknown_words():
    texts = pd.Series(["a b c"] * 90 + ["a b c d e f g h i j"] * 10)
    enc = TextColumnEncoder(min_freq=1, percentile=80).fit(texts)
    assert enc.length == 3 and enc.length_stats["truncated_share"] == pytest.approx(0.1)
    assert "80th percentile" in enc.describe("t")
    ids = enc.transform(pd.Series(["a zzz", "", None]))
    assert ids.shape == (3, 3)
    assert ids[0, 1] == 1  # out-of-vocabulary id
    assert (ids[1:] == 0).all()  # empty and missing texts are all padding


def test_column_encoder_state_round_trips_through_json():
    enc = TextColumnEncoder(tokenizer="bpe", subword_vocab=100).fit(reviews(60, 1)["review"])
    restored = TextColumnEncoder.from_state(json.loads(json.dumps(enc.state())))
    sample = pd.Series(["wonderful film, dreadful music", "unseen words here"])
    np.testing.assert_array_equal(restored.transform(sample), enc.transform(sample))


def test_jieba_unknown_words_fall_back_to_characters():
    enc = TextColumnEncoder(tokenizer="jieba", min_freq=1).fit(pd.Series(["酒店", "服务", "好"]))
    tokens = enc.encode_tokens("服务好")
    assert all(tok in enc.vocabulary for tok in tokens)


# ---- n-grams -------------------------------------------------------------------------------------
def test_ngram_keys_skip_padding_and_count_each_ngram_once():
    ids = torch.tensor([[2, 3, 2, 3, 0, 0]])
    keys = ngram_keys(ids, cardinality=5, orders=2)
    kept = sorted(k for k in keys[0].tolist() if k >= 0)
    # unigrams 2, 3; bigrams (2,3) and (3,2), each once: no n-gram across padding
    assert kept == [2, 3, 5 + 2 * 5 + 3, 5 + 3 * 5 + 2]


def test_naive_bayes_ratios_point_to_the_class_of_a_word():
    ids = np.array([[2, 4], [2, 4], [3, 4], [3, 4]])
    labels = np.eye(2)[[1, 1, 0, 0]]
    table = NgramTable.fit(ids, cardinality=5, orders=1, min_df=1, max_ngrams=None, labels=labels)
    rows = lookup(torch.from_numpy(table.keys), torch.tensor([2, 3, 4, 1])).tolist()
    assert rows[3] == 0  # a key not in the table
    r = table.ratios
    assert r[rows[0], 1] > 0 > r[rows[0], 0]  # word 2 only in class 1
    assert r[rows[1], 0] > 0 > r[rows[1], 1]
    assert abs(r[rows[2], 0]) < 1e-6  # word 4 in both classes alike


def test_cross_fitted_ratios_of_a_fold_come_from_the_other_folds_only():
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 8, size=(40, 5))
    labels = np.eye(2)[rng.integers(0, 2, size=40)]
    table = NgramTable.fit(ids, cardinality=8, orders=2, min_df=1, max_ngrams=None, labels=labels, folds=3)
    folds = row_folds(torch.from_numpy(ids), 3).numpy()
    assert table.fold_ratios is not None and table.fold_ratios.shape == (3, *table.ratios.shape)
    assert len(set(folds.tolist())) == 3
    for f in range(3):
        rest = NgramTable.fit(ids[folds != f], 8, 2, 1, None, labels[folds != f])
        keys = torch.from_numpy(rest.keys)
        here = lookup(torch.from_numpy(table.keys), keys).numpy()
        # the counts of a table fitted without fold f: the same ratios up to one constant per class (the
        # add-one smoothing of n-grams found in fold f only enters the normaliser)
        shift = table.fold_ratios[f][here] - rest.ratios[1:]
        np.testing.assert_allclose(shift, np.broadcast_to(shift[:1], shift.shape), atol=1e-5)
        assert not np.allclose(table.fold_ratios[f], table.ratios)


def test_ngram_encoder_trains_on_fold_ratios_and_scores_with_all_of_them():
    ids = np.array([[2, 3, 0], [2, 4, 0], [3, 3, 1], [4, 1, 0], [2, 2, 2], [3, 1, 4]])
    labels = np.eye(2)[[1, 1, 0, 0, 1, 0]]
    table = NgramTable.fit(ids, cardinality=5, orders=1, min_df=1, max_ngrams=None, labels=labels, folds=2)
    config = TextConfig(encoder="ngram", embedding_dim=4, ngrams=1)
    module = build_text_encoder("ngram", 5, config, ngram_rows=len(table.keys) + 1, out_features=2)
    module.install(table)
    x = torch.from_numpy(ids)
    trained, scored = module.train().wide(x), module.eval().wide(x)
    assert not torch.allclose(trained, scored)
    assert "fold_ratios" not in module.state_dict()  # only training needs them
    plain = build_text_encoder("ngram", 5, config, ngram_rows=len(table.keys) + 1, out_features=2)
    plain.load_state_dict(module.state_dict())
    plain.install(NgramTable.fit(ids, 5, 1, 1, None, labels))  # no folds: the same scores as at evaluation
    torch.testing.assert_close(plain.train().wide(x), scored)


def test_ngram_orders_that_overflow_are_refused():
    with pytest.raises(ConfigError, match="text.ngrams"):
        NgramTable.fit(np.ones((1, 6), dtype="int64"), 10**7, 3, 1, None)


# ---- encoders ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("encoder", "pooling", "bidirectional"),
    [
        ("lstm", "last", False),
        ("lstm", "attention", True),
        ("gru", "mean", True),
        ("cnn", "max", False),
        ("transformer", "mean", False),
        ("bag", "auto", False),
    ],
)
def test_encoders_mask_padding_and_handle_empty_rows(encoder, pooling, bidirectional):
    torch.manual_seed(0)
    config = TextConfig(encoder=encoder, pooling=pooling, bidirectional=bidirectional, embedding_dim=8, hidden=6)
    module = build_text_encoder(encoder, 20, config, length=16).eval()
    ids = torch.tensor([[3, 4, 5, 0], [7, 0, 0, 0], [0, 0, 0, 0]])
    padded = torch.cat([ids, torch.zeros(3, 5, dtype=torch.long)], dim=1)
    with torch.no_grad():
        out, out_padded = module(ids), module(padded)
    assert out.shape == (3, module.out_features)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, out_padded, atol=1e-5, rtol=1e-5)  # padding never changes the result


@pytest.mark.parametrize("encoder", ["bag", "ngram"])
def test_bag_encoders_are_the_mean_embedding_of_the_real_tokens_with_its_gradient(encoder):
    torch.manual_seed(0)
    module = build_text_encoder(encoder, 30, TextConfig(embedding_dim=5, dropout=0.0), ngram_rows=4).eval()
    ids = torch.tensor([[3, 4, 4, 0, 0], [7, 0, 0, 0, 0], [0, 0, 0, 0, 0], [29, 1, 2, 3, 5]])
    table = module.embedding.weight
    mask = (ids > 0).unsqueeze(-1).float()
    expected = (table[ids] * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # masked mean; an empty text gives 0
    out = module(ids)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-6)
    assert out[2].abs().max() == 0
    (got,) = torch.autograd.grad(out.pow(2).sum(), table)
    (want,) = torch.autograd.grad(expected.pow(2).sum(), table)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    assert got[0].abs().max() == 0  # padding never learns


def test_length_buckets_cover_every_row_once_with_less_padding():
    lengths = torch.randint(1, 40, (100,), generator=torch.Generator().manual_seed(0))
    ids = (torch.arange(40).expand(100, 40) < lengths[:, None]).long() * 5
    source = LengthBuckets([torch.zeros(100, 1), ids], torch.arange(100), 10, [1])
    batches = list(source.epoch(torch.Generator().manual_seed(1)))
    again = list(source.epoch(torch.Generator().manual_seed(1)))
    seen = torch.cat([target for _, target in batches])
    assert sorted(seen.tolist()) == list(range(100)) and len(batches) == source.steps()
    assert all(torch.equal(a[1], b[1]) for a, b in zip(batches, again, strict=True))  # same seed, same batches
    assert sum(b[0][1].numel() for b in batches) < ids.numel()  # each batch cut to its longest text
    assert all((inputs[1] > 0).any(0)[-1] for inputs, _ in batches)


# ---- text tables end to end ----------------------------------------------------------------------
def test_text_table_learns_sentiment(fitted):
    test = reviews(100, 7)
    assert (fitted.predict(test) == test["sentiment"]).mean() >= 0.9
    info = fitted.training["text_columns"]["review"]
    assert info["tokenizer"] == "word" and info["max_length"] >= 8


def test_edge_case_texts_predict(fitted):
    huge = "great wonderful " * 65_536  # 1 MiB
    frame = pd.DataFrame(
        {
            "review": [
                "zorblax quuxly fnord",  # unseen words only
                "",
                huge,
                "loved it 😍🔥👍",
                "great film 很好看 отличный фильм",
                "terrible 🤮 dreadful",
            ]
        }
    )
    proba = fitted.predict_proba(frame)
    assert proba.shape == (6, 2) and np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
    labels = fitted.predict(frame)
    assert labels[2] == "pos" and labels[3] == "pos" and labels[5] == "neg"


def test_artifact_reloads_in_a_fresh_process_and_predicts_identically(fitted, tmp_path):
    path = tmp_path / "model"
    fitted.save(path)
    texts = pd.DataFrame({"review": ["great plot", "", "dull 😴 film", "无聊的电影"]})
    texts.to_csv(tmp_path / "new.csv", index=False)
    code = (
        "import sys, json, deepmine; p = deepmine.load(sys.argv[1]); "
        "print(json.dumps(p.predict_proba(sys.argv[2]).tolist()))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "new.csv")], capture_output=True)
    assert out.returncode == 0, out.stderr.decode()
    np.testing.assert_array_equal(np.array(json.loads(out.stdout)), fitted.predict_proba(texts).astype("float64"))


def test_same_seed_same_predictions(fitted):
    from deepmine.tasks.supervised import fit_table

    config = build_config(None, {"columns.target": "sentiment", **QUICK, "report.enabled": True})
    again = fit_table(reviews(240, 0), config)
    sample = reviews(20, 3)
    np.testing.assert_array_equal(again.predict_proba(sample), fitted.predict_proba(sample))


@pytest.mark.parametrize("encoder", ["lstm", "cnn"])
def test_other_encoders_fit_multiclass_with_numeric_columns(encoder):
    from deepmine.tasks.supervised import fit_table

    rng = np.random.default_rng(0)
    words = {"sport": ["goal", "match", "team"], "politics": ["vote", "senate", "law"], "tech": ["chip", "code", "app"]}
    rows = [
        {"text": " ".join(rng.choice(words[topic], 3)) + " today", "score": rng.normal(), "topic": topic}
        for topic in list(words) * 40
    ]
    frame = pd.DataFrame(rows)
    overrides = {"columns.target": "topic", "text.encoder": encoder, "columns.roles": {"text": "text"}, **QUICK}
    predictor = fit_table(frame, build_config(None, {**overrides, "trainer.epochs": 15}))
    assert predictor.task == "multiclass"
    assert (predictor.predict(frame) == frame["topic"]).mean() >= 0.9


def class_folder(root, rows: pd.DataFrame):
    """``rows`` of :func:`reviews` written as a folder per class: ``root/<sentiment>/<row number>.txt``."""
    for i, row in rows.iterrows():
        (root / row["sentiment"]).mkdir(parents=True, exist_ok=True)
        (root / row["sentiment"] / f"{i}.txt").write_text(row["review"], encoding="utf-8")
    return root


def test_cli_fits_a_folder_of_text_files_and_names_the_tokenizer(tmp_path):
    root = class_folder(tmp_path / "reviews", reviews(80, 2))
    out = tmp_path / "m"
    result = CliRunner().invoke(
        app,
        ["fit", str(root), "--out", str(out), "--json", "--no-track", "--no-report"]
        + [f"--set={k}={v}" for k, v in QUICK.items() if k.startswith("trainer")],
    )
    assert result.exit_code == 0, result.output
    assert "text column 'text': word tokenizer" in result.stderr
    assert json.loads(result.stdout)["target"] == "label"

    new = tmp_path / "new"  # new texts to predict: a flat folder of .txt files, one prediction per file
    new.mkdir()
    texts = reviews(6, 9)["review"].tolist()
    for i, text in enumerate(texts):
        (new / f"r{i}.txt").write_text(text, encoding="utf-8")
    (new / "r5.txt").write_text("", encoding="utf-8")  # an empty file is an empty text
    texts[5] = ""
    pd.DataFrame({"text": texts}).to_csv(tmp_path / "new.csv", index=False)
    by_folder = CliRunner().invoke(app, ["predict", str(out), str(new), "--id", "file"])
    by_table = CliRunner().invoke(app, ["predict", str(out), str(tmp_path / "new.csv")])
    assert by_folder.exit_code == 0 and by_table.exit_code == 0, by_folder.output + by_table.output
    folder_rows, table_rows = pd.read_csv(io.StringIO(by_folder.stdout)), pd.read_csv(io.StringIO(by_table.stdout))
    assert folder_rows["file"].tolist() == [f"r{i}.txt" for i in range(6)]
    assert "ignoring column" not in by_folder.stderr  # the id column it was asked to carry is not "ignored"
    pd.testing.assert_frame_equal(folder_rows.drop(columns="file"), table_rows)
    # without --id the folder's own file names are the row key: echoed, not warned about as an unknown column
    keyed = CliRunner().invoke(app, ["predict", str(out), str(new)])
    assert keyed.exit_code == 0 and keyed.stderr == "", keyed.output
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(keyed.stdout)), folder_rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeepmineWarning)  # predict() in Python: the file names are no input either
        assert deepmine.load(out).predict(new).tolist() == folder_rows["prediction"].tolist()
    classes = CliRunner().invoke(app, ["predict", str(out), str(root)])  # class folders have no file names
    assert classes.exit_code == 0 and "file" not in classes.stdout.splitlines()[0], classes.output
    scored = CliRunner().invoke(app, ["evaluate", str(out), str(root), "--json"])  # class folders: labelled
    assert scored.exit_code == 0 and json.loads(scored.stdout)["rows"] == 80, scored.output


def test_hidden_files_in_class_folders_are_not_training_texts(tmp_path):
    # a macOS resource fork (pos/._1.txt) or a checkpoint folder (pos/.ipynb_checkpoints/1.txt) was read as a
    # training text of its class, though a hidden file does not stop the folder from being a text folder
    from deepmine.text.folders import is_text_folder, read_text_folder

    for label in ("pos", "neg"):
        (tmp_path / label / ".ipynb_checkpoints").mkdir(parents=True)
        (tmp_path / label / "1.txt").write_text(f"a {label} review", encoding="utf-8")
        (tmp_path / label / "._1.txt").write_bytes(b"\x00\x05\x16\x07Mac OS X")
        (tmp_path / label / ".ipynb_checkpoints" / "1.txt").write_text("old draft", encoding="utf-8")
        (tmp_path / label / ".ipynb_checkpoints" / "notes.md").write_text("not a text", encoding="utf-8")
    assert is_text_folder(tmp_path)
    table = read_text_folder(tmp_path)
    assert table.to_dict("records") == [
        {"text": "a neg review", "label": "neg"},
        {"text": "a pos review", "label": "pos"},
    ]


def test_text_folders_not_in_utf8_are_decoded_in_their_encoding_with_one_warning(tmp_path):
    # GBK (Chinese Windows), cp1252 and UTF-16 files were decoded as UTF-8 with U+FFFD, silently
    from deepmine.text.folders import read_text_folder

    chinese = ["这部电影非常好看", "演员的表演很精彩", "剧情拖沓，浪费时间。", "太无聊了，不推荐"]
    for i, text in enumerate(chinese):
        (tmp_path / "classes" / ("pos" if i < 2 else "neg")).mkdir(parents=True, exist_ok=True)
        (tmp_path / "classes" / ("pos" if i < 2 else "neg") / f"{i}.txt").write_bytes(text.encode("gbk"))
    (tmp_path / "classes" / "pos" / "u8.txt").write_bytes("好看 ✓".encode("utf-8-sig"))
    (tmp_path / "classes" / "pos" / "u16.txt").write_bytes("好看 ✓".encode("utf-16"))  # with its BOM
    with pytest.warns(DeepmineWarning) as caught:
        table = read_text_folder(tmp_path / "classes")
    assert table["text"].tolist() == [chinese[2], chinese[3], chinese[0], chinese[1], "好看 ✓", "好看 ✓"]
    assert [str(w.message) for w in caught] == [
        f"'{tmp_path / 'classes'}': 4 of 6 .txt files are not UTF-8 (e.g. 'neg/2.txt'); read them as gb18030; "
        "re-save them as UTF-8 if their texts look wrong"
    ]
    flat = tmp_path / "new"  # new texts to predict go through the same reader
    flat.mkdir()
    (flat / "a.txt").write_bytes("café crème, très naïve".encode("cp1252"))
    (flat / "b.txt").write_bytes(b"\x00\x81\xfe binary")  # nothing decodes it: replaced, and said so
    (flat / "c.txt").write_text("plain", encoding="utf-8")
    with pytest.warns(
        DeepmineWarning,
        match=r"2 of 3 .txt files are not UTF-8 \(e.g. 'a.txt'\); read them as cp1252, "
        r"but 1 matched no encoding \(e.g. 'b.txt'\).*U\+FFFD; re-save them as UTF-8$",
    ) as caught:
        table = read_text_folder(flat)
    assert len(caught) == 1
    assert table["text"].tolist() == ["café crème, très naïve", "\x00\ufffd\ufffd binary", "plain"]
    (flat / "a.txt").write_text("café", encoding="utf-8")
    (flat / "b.txt").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # all UTF-8: no warning
        assert read_text_folder(flat)["text"].tolist() == ["café", "plain"]


def test_predicting_a_text_folder_feeds_the_models_one_text_column(fitted, tmp_path):
    # a model fitted on a table's 'review' column asked the folder for a 'review' column it cannot have
    model, new = tmp_path / "m", tmp_path / "new"
    fitted.save(model)
    new.mkdir()
    texts = reviews(4, 5)["review"].tolist()
    for i, text in enumerate(texts):
        (new / f"r{i}.txt").write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["predict", str(model), str(new)])
    assert result.exit_code == 0 and result.stderr == "", result.output
    rows = pd.read_csv(io.StringIO(result.stdout))
    assert rows["file"].tolist() == [f"r{i}.txt" for i in range(4)]
    expected = fitted.predict_frame(pd.DataFrame({"review": texts}))
    pd.testing.assert_frame_equal(rows.drop(columns="file"), expected, check_dtype=False, atol=1e-6)


def test_a_class_folder_is_labelled_data_for_a_model_fitted_on_a_table(fitted, tmp_path):
    # a model fitted on a table (text 'review', target 'sentiment') found no 'sentiment' in a class folder:
    # evaluate refused it, and predict warned that the folder's 'label' column was ignored
    from deepmine.text.folders import as_model_reads, read_text_folder

    model, root = tmp_path / "m", class_folder(tmp_path / "reviews", reviews(20, 7))
    fitted.save(model)
    table = read_text_folder(root).rename(columns={"text": "review", "label": "sentiment"})  # the same rows
    scored = CliRunner().invoke(app, ["evaluate", str(model), str(root), "--json"])
    assert scored.exit_code == 0 and scored.stderr == "", scored.output
    metrics, expected = json.loads(scored.stdout), fitted.evaluate(table)
    assert metrics["rows"] == 20 and metrics["confusion_matrix"] == expected["confusion_matrix"]
    assert metrics["accuracy"] == pytest.approx(expected["accuracy"])
    predicted = CliRunner().invoke(app, ["predict", str(model), str(root)])
    assert predicted.exit_code == 0 and predicted.stderr == "", predicted.output  # the labels are no stray column
    assert pd.read_csv(io.StringIO(predicted.stdout))["prediction"].tolist() == fitted.predict(table).tolist()
    # the labels go to the target only where the model has none of that name; a target 'text' gets the labels
    labelled = pd.DataFrame({"text": ["hello"], "label": ["pos"]})
    assert as_model_reads(labelled, ["review"], ["review"], None, "d", "text").to_dict("records") == [
        {"review": "hello", "text": "pos"}
    ]
    assert as_model_reads(labelled, ["text"], [], None, "d", "label").columns.tolist() == ["text", "label"]
    flat = pd.DataFrame({"file": ["a.txt"], "text": ["hello"]})
    assert as_model_reads(flat, ["review"], ["review"], "file", "d", "sentiment").columns.tolist() == ["file", "review"]


def test_explain_reads_a_class_folder_as_predict_does(fitted, tmp_path):
    # explain read the folder as a (text, label) table, so the model's 'review' column was missing
    from deepmine.text.folders import read_text_folder

    model, root, table = tmp_path / "m", class_folder(tmp_path / "reviews", reviews(20, 7)), tmp_path / "r.csv"
    fitted.save(model)
    read_text_folder(root).rename(columns={"text": "review", "label": "sentiment"}).to_csv(table, index=False)
    options = ["--rows", "1", "--repeats", "1", "--json"]
    by_folder = CliRunner().invoke(app, ["explain", str(model), str(root), *options])
    by_table = CliRunner().invoke(app, ["explain", str(model), str(table), *options])
    assert by_folder.exit_code == 0 and by_folder.stderr == "", by_folder.output
    assert by_table.exit_code == 0, by_table.output
    folder, expected = json.loads(by_folder.stdout), json.loads(by_table.stdout)
    assert folder["importance"]["mode"] == "metric"  # the class folders' names are the metric's truth
    assert [c["column"] for c in folder["importance"]["columns"]] == ["review"]
    assert folder["importance"] == expected["importance"] and folder["attributions"] == expected["attributions"]


def test_a_text_folder_for_a_model_reading_other_columns_says_to_use_a_table():
    from deepmine.exceptions import ColumnError
    from deepmine.text.folders import as_model_reads

    frame = pd.DataFrame({"file": ["a.txt"], "text": ["hello"]})
    with pytest.raises(
        ColumnError,
        match=r"^new is a folder of .txt files, which gives one text per file, but this "
        r"model reads text column\(s\) \['title', 'body'\]; predict from a table \(CSV, Parquet, "
        r"JSON Lines\) holding the column\(s\) \['title', 'body'\]$",
    ):
        as_model_reads(frame, ["title", "body"], ["title", "body"], "file", "new")
    with pytest.raises(ColumnError, match=r"reads text column\(s\) \['review'\] and other column\(s\) \['stars'\];"):
        as_model_reads(frame, ["review", "stars"], ["review"], "file", "new")
    with pytest.raises(ColumnError, match=r"reads no text column \(its inputs: \['age'\]\);"):
        as_model_reads(frame, ["age"], [], "file", "new")
    assert as_model_reads(frame, ["review"], ["review"], None, "new").columns.tolist() == ["review"]
    # fitted on a folder of short texts, its 'text' column may have been read as categories: still fed
    assert as_model_reads(frame, ["text"], [], "file", "new").columns.tolist() == ["file", "text"]


def chinese_reviews() -> pd.DataFrame:
    """80 short Chinese hotel reviews (column 评论) whose label y follows their good or bad words."""
    rng = np.random.default_rng(0)
    good, bad = ["干净", "方便", "满意", "热情"], ["吵闹", "失望", "破旧", "糟糕"]
    rows = [
        {
            "评论": "房间" + "".join(rng.choice(good if y else bad, 2)) + "，服务" + rng.choice(good if y else bad),
            "y": y,
        }
        for y in [0, 1] * 40
    ]
    return pd.DataFrame(rows)


def test_cli_picks_jieba_for_chinese_without_being_told(tmp_path):
    chinese_reviews().to_csv(tmp_path / "zh.csv", index=False)
    result = CliRunner().invoke(
        app,
        ["fit", str(tmp_path / "zh.csv"), "--target", "y", "--out", str(tmp_path / "zh"), "--no-track"]
        + ["--no-report", "--set", "trainer.epochs=3", "--set", "columns.roles.评论=text"],
    )
    assert result.exit_code == 0, result.output
    assert "text column '评论': jieba tokenizer" in result.stderr


def test_text_classifier_estimator_clones_and_predicts():
    from sklearn.base import clone

    from deepmine.sklearn_api import TextClassifier

    data = reviews(200, 4)
    model = TextClassifier(epochs=6, trainer__threads=1)
    twin = clone(model.set_params(text__ngrams=2))
    assert twin.get_params()["text__ngrams"] == 2 and twin.encoder == "auto"
    twin.fit(data["review"].tolist(), data["sentiment"])
    test = reviews(60, 5)
    assert (twin.predict(test["review"]) == test["sentiment"].to_numpy()).mean() >= 0.9
    proba = twin.predict_proba(["", "great superb"])
    assert proba.shape == (2, 2) and list(twin.classes_) == ["neg", "pos"]
    column = test["review"].to_numpy(dtype=object).reshape(-1, 1)  # what ColumnTransformer hands on
    assert (twin.predict(column) == twin.predict(test["review"])).all()


def test_classic_keras_lstm_recipe_is_expressible_in_config():
    from pathlib import Path

    from deepmine.tasks.supervised import fit_table

    example = Path(__file__).parents[1] / "examples" / "imdb_lstm.yaml"
    config = build_config(example, {"columns.target": "sentiment", "trainer.threads": 1, "report.enabled": False})
    predictor = fit_table(reviews(80, 6), config)
    encoder = predictor.model.texts[0]
    assert type(encoder.rnn).__name__ == "LSTM" and encoder.rnn.hidden_size == 64
    assert encoder.embedding.embedding_dim == 64 and not encoder.rnn.bidirectional
    assert predictor.pipeline.text["review"].length == 100  # pad 100, whatever the texts' lengths
    assert predictor.training["epochs"] == 3


def test_a_cut_keeps_both_the_words_and_the_appended_characters():
    from deepmine.text.column import _cut

    words, chars = [f"w{i}" for i in range(10)], [f"c{i}" for i in range(30)]
    kept = _cut(words, chars, 8)
    assert kept == ["w0", "w1", "w2", "w3", "c0", "c1", "c2", "c3"]  # half the room each
    assert _cut(words[:2], chars, 8) == ["w0", "w1", *chars[:6]]  # a short part lends its room to the other
    assert _cut(words, chars[:1], 8) == [*words[:7], "c0"]
    assert _cut(words, chars, None) == words + chars and _cut(words[:3], chars[:3], 8) == words[:3] + chars[:3]


# ---- linear members (nbsvm, tfidf) ----------------------------------------------------------------
def _toy_ids(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes whose rows draw most ids from their own range of a 30-id vocabulary."""
    rng = np.random.default_rng(seed)
    y = np.arange(rows) % 3
    ids = np.zeros((rows, 12), dtype="int64")
    for i, label in enumerate(y):
        length = rng.integers(4, 13)
        own = rng.integers(1 + 10 * label, 11 + 10 * label, length)
        noise = rng.integers(1, 31, length)
        ids[i, :length] = np.where(rng.random(length) < 0.6, own, noise)
    return ids, y


def test_tfidf_member_reaches_the_scikit_learn_logistic_regression_optimum():
    from sklearn.linear_model import LogisticRegression

    from deepmine.text.linear import STRENGTH, _design, fit_linear, idf, presence

    ids, y = _toy_ids(300, 0)
    table = NgramTable.fit(ids, 31, 2, 2, None, np.eye(3)[y])
    present, size = presence(ids, table.keys, 31, 2), (len(ids), len(table.keys) + 1)
    fit = fit_linear("tfidf", present, size, torch.from_numpy(y), "multiclass", 3, table.ratios)
    design = _design(present, torch.from_numpy(idf(present, size)), size).to_dense().numpy()
    reference = LogisticRegression(C=STRENGTH["tfidf"], max_iter=5000, tol=1e-10).fit(design, y)
    config = TextConfig(ngrams=2)
    encoder = build_text_encoder("tfidf", 31, config, ngram_rows=len(table.keys) + 1, out_features=3)
    table.linear["tfidf"] = fit
    encoder.install(table)
    proba = torch.softmax(encoder.wide(torch.from_numpy(ids)), dim=1).numpy()
    np.testing.assert_allclose(proba, reference.predict_proba(design), atol=2e-3)
    assert encoder(torch.from_numpy(ids)).abs().sum() == 0  # no deep features: the scores go to the output


def test_nbsvm_member_scales_ngrams_by_their_ratios_and_separates_the_classes():
    from deepmine.text.linear import fit_linear, presence

    ids, y = _toy_ids(300, 1)
    test_ids, test_y = _toy_ids(150, 2)
    table = NgramTable.fit(ids, 31, 2, 2, None, np.eye(3)[y])
    present, size = presence(ids, table.keys, 31, 2), (len(ids), len(table.keys) + 1)
    fit = fit_linear("nbsvm", present, size, torch.from_numpy(y), "multiclass", 3, table.ratios)
    np.testing.assert_array_equal(fit.multiplier, table.ratios)
    encoder = build_text_encoder("nbsvm", 31, TextConfig(ngrams=2), ngram_rows=len(table.keys) + 1, out_features=3)
    table.linear["nbsvm"] = fit
    encoder.install(table)
    predicted = encoder.wide(torch.from_numpy(test_ids)).argmax(1).numpy()
    assert (predicted == test_y).mean() > 0.9
    empty = encoder.wide(torch.zeros((1, 12), dtype=torch.int64))
    np.testing.assert_allclose(empty.numpy()[0], fit.bias, atol=1e-6)  # an empty text scores the bias alone


def test_default_text_model_is_a_network_and_two_linear_members(fitted):
    members = [m["text_encoder"] for m in fitted.model_spec["members"]]
    assert members == ["ngram", "nbsvm", "tfidf"]
    linear = [m.texts[0] for m in fitted.model.members[1:]]
    assert all(member.coefficients.abs().sum() > 0 for member in linear)  # solved before training
    assert all(not buffer.requires_grad for member in linear for buffer in member.buffers())
    for member in fitted.model.members[1:]:  # outputs its linear scores alone and trains nothing
        assert not any(p.requires_grad for p in member.parameters())
        assert member.head.weight.abs().sum() == 0 and member.head.bias.abs().sum() == 0
    assert all(p.requires_grad for p in fitted.model.members[0].head.parameters())
    assert fitted.model.early_stopping_delta == 0.01  # 1 % steps, since the frozen members damp the loss


def test_training_skips_frozen_members_with_the_same_gradient(fitted):
    from deepmine.nn.ensemble import MemberMeanLoss, member_mean_loss

    model = fitted.model
    ids = torch.randint(1, 20, (8, 12))
    x = [torch.zeros((8, 0)), torch.zeros((8, 0), dtype=torch.int64), ids]
    target = torch.randint(0, 2, (8,))
    model.train()
    torch.manual_seed(0)
    skipped = member_mean_loss(model, torch.nn.CrossEntropyLoss())(model(*x), target)
    assert model(*x).shape[0] == 1  # the two frozen linear members are not run while training
    network = model.members[0]
    grad_skipped = torch.autograd.grad(skipped, network.head.weight)[0]
    torch.manual_seed(0)
    every = torch.stack([network(*x)] + [member(*x) for member in model.members[1:]])
    full = MemberMeanLoss(torch.nn.CrossEntropyLoss())(every, target)  # the mean over all three members
    grad_full = torch.autograd.grad(full, network.head.weight)[0]
    torch.testing.assert_close(grad_skipped, grad_full)
    model.eval()
    assert model(*x).shape == (8, 2)  # predictions still average all three


def test_eval_members_share_one_ngram_lookup_per_text_and_score_as_alone(fitted, monkeypatch):
    import math

    import deepmine.text.ngrams as ngrams

    model = fitted.model.eval()
    from deepmine.predictor import to_tensors

    x = to_tensors(fitted.pipeline.transform(reviews(40, 5).drop(columns="sentiment"), "t"))
    with torch.no_grad():  # each member alone, outside the shared block: its own lookup
        alone = torch.stack([member(*x) for member in model.members])
    expected = torch.logsumexp(torch.log_softmax(alone, dim=-1), dim=0) - math.log(len(model.members))
    calls = []
    real = ngrams.lookup
    monkeypatch.setattr(ngrams, "lookup", lambda table, keys: calls.append(len(table)) or real(table, keys))
    with torch.no_grad():
        shared = model(*x)
    assert len(calls) == 1  # three members read the review column's n-grams: looked up once
    torch.testing.assert_close(shared, expected)
    other = x[:-1] + [x[-1].clone()]  # another ids tensor (same values) is looked up again, never mixed up
    with torch.no_grad(), ngrams.shared_table_rows():
        model.members[0].texts[0].wide(x[-1])
        model.members[1].texts[0].wide(other[-1])
    assert len(calls) == 3


def test_auto_encoder_keeps_the_network_alone_beside_other_columns():
    from deepmine.tasks.supervised import fit_table

    frame = reviews(120, 6).assign(stars=lambda f: (f["sentiment"] == "pos") * 4.0 + 1.0)
    predictor = fit_table(frame, build_config(None, {"columns.target": "sentiment", **QUICK, "trainer.epochs": 2}))
    assert predictor.config.text.encoder == "ngram"  # linear members would score the text alone
    assert [m["text_encoder"] for m in predictor.model_spec["members"]] == ["ngram"]


def test_text_classifier_is_exported_at_the_top_level():
    from deepmine.sklearn_api import TextClassifier

    assert deepmine.TextClassifier is TextClassifier and "TextClassifier" in deepmine.__all__


def test_a_min_freq_no_word_reaches_warns_that_the_text_carries_nothing():
    from deepmine.exceptions import DeepmineWarning

    texts = pd.Series(["good film", "bad plot", "good plot"], name="review")
    with pytest.warns(DeepmineWarning, match=r"text column 'review': no token is seen 100000 times.*text.min_freq"):
        encoder = TextColumnEncoder(min_freq=100_000).fit(texts)
    assert encoder.cardinality == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeepmineWarning)
        assert TextColumnEncoder(min_freq=2).fit(texts).cardinality == 4  # good, plot


def test_a_text_model_predicts_a_plain_list_of_strings(fitted):
    from conftest import make_table

    from deepmine.exceptions import DataError

    predictor = fitted
    texts = reviews(5, 11)["review"].tolist() + ["", "😀"]
    frame = pd.DataFrame({"review": texts})
    assert predictor.predict(texts).tolist() == predictor.predict(frame).tolist()
    np.testing.assert_array_equal(predictor.predict_proba(tuple(texts)), predictor.predict_proba(frame))
    two_columns = deepmine.fit(make_table(80), target="label", **QUICK)
    assert predictor.predict(np.asarray(texts)[:, None]).tolist() == predictor.predict(frame).tolist()  # (n, 1)
    with pytest.raises(DataError, match=r"a list of shape \(2,\) does not fit this model's \d+ input column"):
        two_columns.predict(["a", "b"])
    table = make_table(20, seed=5)[[s.name for s in two_columns.schema.features]]
    np.testing.assert_array_equal(two_columns.predict_proba(table.to_numpy()), two_columns.predict_proba(table))


def test_served_one_column_csv_keeps_blank_lines_as_empty_texts(fitted, tmp_path):
    # serve skipped a blank line of a one-column CSV upload, so the answers no longer lined up with the lines
    # sent, while `deepmine predict` on the same file keeps it as an empty text
    from starlette.testclient import TestClient

    from deepmine.data.sources import load_table
    from deepmine.serve import create_app

    body = "\n\nreview\nloved it, great film\n\n   \nawful and boring\n"  # blank lines before the header skipped
    path = tmp_path / "texts.csv"
    path.write_text(body, encoding="utf-8")
    expected = fitted.predict(load_table(path))
    assert len(expected) == 4
    with TestClient(create_app(fitted, access_log=False)) as client:
        for sent in (
            {"content": body, "headers": {"Content-Type": "text/csv"}},
            {"files": {"file": ("texts.csv", body, "text/csv")}},
        ):
            answer = client.post("/predict", **sent)
            assert answer.status_code == 200, answer.text
            assert [p["prediction"] for p in answer.json()["predictions"]] == expected.tolist()
