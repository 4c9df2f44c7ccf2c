"""Word vectors: word2vec/GloVe text files, embedding matrices, `deepmine embed` and `deepmine neighbors`."""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import deepmine
from deepmine.exceptions import ColumnError, ConfigError, DataError, DeepmineWarning
from deepmine.text.embed import read_documents, resolve_tokenizer
from deepmine.text.vectors import WordVectors, atomic_text_file, embedding_matrix, load_vectors
from deepmine.text.vocab import Vocabulary


def _vectors(n: int = 6, dim: int = 4, seed: int = 0) -> WordVectors:
    rng = np.random.default_rng(seed)
    return WordVectors([f"w{i}" for i in range(n)], rng.normal(size=(n, dim)))


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---- reading and writing ------------------------------------------------------------------------
def test_round_trip_keeps_words_and_values(tmp_path):
    vectors = _vectors()
    back = load_vectors(vectors.save(tmp_path / "v.txt"))
    assert back.words == vectors.words
    np.testing.assert_allclose(back.matrix, vectors.matrix, rtol=1e-5)
    exact = load_vectors(vectors.save(tmp_path / "exact.txt", precision=9))  # 9 digits round-trip float32
    np.testing.assert_array_equal(exact.matrix, vectors.matrix)
    assert (tmp_path / "v.txt").read_text().splitlines()[0] == "6 4"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left behind


def test_glove_without_header_reads_like_word2vec_with_header(tmp_path):
    body = "the 0.1 0.2 0.3\ncat -1 2.5e-1 3\nNew York 1 2 3\n"  # GloVe files may hold words with spaces
    glove = load_vectors(_write(tmp_path / "glove.txt", body))
    w2v = load_vectors(_write(tmp_path / "w2v.txt", "3 3\n" + body))
    assert glove.words == w2v.words == ["the", "cat", "New York"]
    np.testing.assert_array_equal(glove.matrix, w2v.matrix)
    assert glove.matrix.dtype == np.float32
    np.testing.assert_allclose(glove["cat"], [-1.0, 0.25, 3.0])
    assert len(load_vectors(tmp_path / "w2v.txt", limit=2)) == 2
    tabs = load_vectors(_write(tmp_path / "tabs.txt", "the\t0.1\t0.2\t0.3\t\r\ncat -1 0.25 3 \r\n"))
    np.testing.assert_array_equal(tabs.matrix, glove.matrix[:2])


def test_gzip_files_are_read_and_written(tmp_path):
    vectors = _vectors()
    path = vectors.save(tmp_path / "v.txt.gz")
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_allclose(load_vectors(path).matrix, vectors.matrix, rtol=1e-5)
    no_suffix = tmp_path / "glove.bin"  # gzip is recognised by its magic bytes, not only by the name
    no_suffix.write_bytes(gzip.compress(b"a 1 2\nb 3 4\n"))
    assert load_vectors(no_suffix).words == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a 1 2 3\nb 1 2\n", r"bad\.txt:2: 2 values after the word, expected 3 \(the dimension set by line 1\)"),
        ("2 3\na 1 2 3\nb 1 2 3 4\n", r"bad\.txt:3: 4 values after the word, expected 3 \(.*header on line 1"),
        ("a 1 2\nb 1 x\n", r"bad\.txt:2: value 'x' of word 'b' is not a number"),
        ("a 1 nan\n", r"bad\.txt:1: word 'a' has a NaN or infinite value"),
        ("", r"'.*bad\.txt' is empty"),
        ("\n\n", r"'.*bad\.txt' is empty"),
        ("3 2\n", r"'.*bad\.txt' has a header but no vectors"),
        ("3 2\na 1 2\nb 1 2\n", r"bad\.txt holds 2 vectors but its header declares 3; the file may be truncated"),
        ("lonely\n", r"bad\.txt:1: 'lonely' has no values"),
    ],
)
def test_malformed_files_fail_with_one_line_naming_the_file_and_line(tmp_path, text, message):
    with pytest.raises(DataError, match=message) as caught:
        load_vectors(_write(tmp_path / "bad.txt", text))
    assert "\n" not in str(caught.value)


def test_missing_file_and_non_utf8_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_vectors(tmp_path / "nope.txt")
    (tmp_path / "latin.txt").write_bytes(b"a 1 2\n\xe9t\xe9 1 2\n")
    with pytest.raises(DataError, match=r"latin\.txt:2: not UTF-8"):
        load_vectors(tmp_path / "latin.txt")


def test_repeated_words_keep_their_first_vector_with_a_warning(tmp_path):
    with pytest.warns(DeepmineWarning, match="1 repeated words; the first vector of each is kept"):
        vectors = load_vectors(_write(tmp_path / "rep.txt", "a 1 2\nb 3 4\na 5 6\nc 2 4\n"))
    np.testing.assert_array_equal(vectors["a"], [1, 2])
    assert vectors.words == ["a", "b", "c"] and len(vectors.matrix) == 3  # the repeat is gone, not hidden
    assert [w for w, _ in vectors.nearest("a", 2)] == ["c", "b"]  # never its own neighbour


def test_a_binary_word2vec_file_says_how_to_convert_it(tmp_path):
    path = tmp_path / "vectors.bin"
    path.write_bytes(b"2 3\n" + b"king " + np.asarray([0.5, 0, 1], "<f4").tobytes() + b"\nqueen " + bytes(12) + b"\n")
    with pytest.raises(
        DataError, match=r"looks like a binary word2vec file.*save_word2vec_format\(out, binary=False\)"
    ):
        load_vectors(path)


def test_a_failed_write_leaves_the_existing_file_untouched(tmp_path):
    path = _write(tmp_path / "v.txt", "old content\n")
    with pytest.raises(RuntimeError), atomic_text_file(path) as handle:
        handle.write("half written")
        raise RuntimeError("disk full")
    assert path.read_text() == "old content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["v.txt"]


# ---- nearest neighbours -------------------------------------------------------------------------
def test_nearest_is_cosine_ranked_and_excludes_the_word():
    vectors = WordVectors(["a", "b", "c", "d"], [[1, 0], [10, 1], [0, 1], [-1, 0]])
    found = vectors.nearest("a", k=2)
    assert [w for w, _ in found] == ["b", "c"]
    assert found[0][1] == pytest.approx(10 / np.sqrt(101), rel=1e-6)
    assert found[1][1] == pytest.approx(0.0, abs=1e-7)
    assert len(vectors.nearest("a", k=50)) == 3


def test_unknown_word_suggests_close_spellings():
    vectors = WordVectors(["hello", "help", "world"], np.eye(3))
    with pytest.raises(DataError, match=r"'helo' is not in the 3-word vocabulary .*close spellings: 'hello'"):
        vectors.nearest("helo")
    with pytest.raises(DataError, match=r"close spellings: 'world'"):
        vectors.nearest("World")


# ---- embedding matrices -------------------------------------------------------------------------
def test_embedding_matrix_aligns_rows_with_the_vocabulary():
    vectors = WordVectors(["cat", "Paris", "dog", "the"], np.arange(1, 13, dtype=float).reshape(4, 3))
    vocab = Vocabulary(["the", "Cat", "paris", "zebra", "dog"])
    matrix, coverage = embedding_matrix(vectors, vocab.tokens, seed=3)
    assert matrix.shape == (7, 3) and matrix.dtype == np.float32
    assert not matrix[0].any()  # <pad>
    np.testing.assert_array_equal(matrix[vocab.id("the")], vectors["the"])
    np.testing.assert_array_equal(matrix[vocab.id("Cat")], vectors["cat"])  # lower-case fallback
    np.testing.assert_array_equal(matrix[vocab.id("paris")], vectors["Paris"])  # the vectors' casing
    np.testing.assert_array_equal(matrix[vocab.id("dog")], vectors["dog"])
    assert coverage == pytest.approx(4 / 5)  # <pad> and <unk> not counted
    random_rows = matrix[[1, vocab.id("zebra")]]
    assert not np.isin(random_rows, vectors.matrix).any()


def test_embedding_matrix_random_rows_follow_the_seed_and_the_vectors_scale():
    rng = np.random.default_rng(0)
    vectors = WordVectors([f"w{i}" for i in range(50)], rng.normal(0, 0.2, size=(50, 64)))
    tokens = ["<pad>", "<unk>", *[f"new{i}" for i in range(300)]]
    first, coverage = embedding_matrix(vectors, tokens, dim=64, seed=1)
    again, _ = embedding_matrix(vectors, tokens, seed=1)
    other, _ = embedding_matrix(vectors, tokens, seed=2)
    assert coverage == 0.0
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first[1:], other[1:])
    assert first[1:].std() == pytest.approx(vectors.matrix.std(), rel=0.05)
    with pytest.raises(ConfigError, match="embedding dimension is 32 but .* 64-dimensional vectors"):
        embedding_matrix(vectors, tokens, dim=32)


# ---- training: `deepmine embed` -----------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Four topics; in each, alpha<g> and beta<g> appear between the same context words and nowhere else."""
    rng = random.Random(1)
    lines = []
    for _ in range(1500):
        g = rng.randrange(4)
        context = [f"c{g}x{i}" for i in range(6)]
        lines.append(f"{rng.choice(context)} {rng.choice([f'alpha{g}', f'beta{g}'])} {rng.choice(context)}")
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


EMBED = ["--dim", "16", "--window", "1", "--min-count", "1", "--epochs", "40"]


@pytest.fixture(scope="module")
def embedded(corpus) -> Path:
    from deepmine.cli import main

    out = corpus.parent / "vectors.txt"
    try:
        main(["embed", str(corpus), "-o", str(out), "--json", *EMBED])
    except SystemExit as done:
        pytest.fail(f"deepmine embed exited with {done.code}")
    return out


def test_words_sharing_contexts_are_each_others_nearest_neighbours(embedded, run_cli):
    vectors = load_vectors(embedded)
    assert len(vectors) == 32 and vectors.dim == 16
    for g in range(4):
        done = run_cli("neighbors", embedded, f"alpha{g}", "-k", "3", "--json")
        assert done.code == 0, done.err
        assert json.loads(done.out)["neighbors"][0]["word"] == f"beta{g}"
        assert vectors.nearest(f"beta{g}", k=1)[0][0] == f"alpha{g}"
    done = run_cli("neighbors", embedded, "ALPHA1", "-k", "3", "--json")  # another casing of a known word
    assert done.code == 0, done.err
    assert json.loads(done.out)["word"] == "alpha1" and json.loads(done.out)["neighbors"][0]["word"] == "beta1"
    assert "'ALPHA1' is not in" in done.err and "'alpha1'" in done.err


def test_same_seed_gives_an_identical_file_whatever_the_hash_seed(corpus, embedded, tmp_path):
    again = tmp_path / "again.txt"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    code = "from deepmine.cli import main; main()"
    args = [sys.executable, "-c", code, "embed", str(corpus), "-o", str(again), *EMBED]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert again.read_bytes() == embedded.read_bytes()
    other = deepmine.embed(corpus, dim=16, window=1, min_count=1, epochs=2, seed=1)
    first = deepmine.embed(corpus, dim=16, window=1, min_count=1, epochs=2, seed=0)
    assert not np.allclose(other.matrix, first.matrix)


def test_embed_summary_and_unknown_word_error(embedded, corpus, run_cli, tmp_path):
    done = run_cli("embed", corpus, "-o", tmp_path / "v.txt.gz", "--json", "--dim", "8", "--epochs", "1")
    assert done.code == 0, done.err
    summary = json.loads(done.out)
    assert summary["words"] == 32 and summary["dim"] == 8 and summary["tokens"] == 4500
    assert summary["documents"] == 1500 and summary["tokenizer"] == "word"
    assert load_vectors(tmp_path / "v.txt.gz").dim == 8
    missing = run_cli("neighbors", embedded, "alpah0")
    assert missing.code == 1
    message = missing.err.strip()
    assert "\n" not in message
    assert message.startswith(f"error: 'alpah0' is not in the 32-word vocabulary of {embedded} (close spellings: ")
    assert "'alpha0'" in message and "beta" not in message


def test_embed_bad_settings_are_one_line_errors(corpus, run_cli, tmp_path):
    done = run_cli("embed", corpus, "-o", tmp_path / "v.txt", "--method", "skipgrm")
    assert done.code == 2 and "unknown method 'skipgrm' (did you mean 'skipgram'?)" in done.err
    done = run_cli("embed", corpus, "-o", tmp_path / "v.txt", "--min-count", "100000")
    assert done.code == 1 and "no word of" in done.err and "min_count=100000" in done.err
    assert not (tmp_path / "v.txt").exists()


# ---- corpora --------------------------------------------------------------------------------------
def test_table_corpus_uses_its_single_text_column(tmp_path):
    frame = pd.DataFrame(
        {
            "id": range(30),
            "review": [f"the room was clean and quiet number {i}" for i in range(30)],
            "label": ["pos", "neg"] * 15,
        }
    )
    frame.to_csv(tmp_path / "t.csv", index=False)
    docs, where = read_documents(tmp_path / "t.csv")
    assert docs == frame["review"].tolist() and "column 'review'" in where
    frame["title"] = [f"a long title for the review {i}" for i in range(30)]
    frame.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(ColumnError, match=r"2 text columns \(review, title\); name the column .* --column"):
        read_documents(tmp_path / "t.parquet")
    assert read_documents(tmp_path / "t.parquet", column="title")[0] == frame["title"].tolist()
    with pytest.raises(ColumnError, match=r"no column 'titel' \(did you mean 'title'\?\)"):
        read_documents(tmp_path / "t.parquet", column="titel")


def test_folder_corpus_reads_every_line_of_every_txt_file(tmp_path):
    (tmp_path / "pos").mkdir()
    _write(tmp_path / "pos" / "b.txt", "great stay\n\nlovely staff\n")
    _write(tmp_path / "a.txt", "first document\r\nsecond\x85one\u2028still one\r\n")  # CRLF; marks inside a line
    _write(tmp_path / "notes.md", "not a text file of the corpus\n")
    (tmp_path / "old_mac.txt").write_bytes(b"one line\ranother line\r")  # lines ended by \r alone
    docs, _ = read_documents(tmp_path)
    assert docs == [
        "first document",
        "second\x85one\u2028still one",
        "one line",
        "another line",
        "great stay",
        "lovely staff",
    ]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="folder '.*empty' holds no .txt files"):
        read_documents(tmp_path / "empty")


def test_a_corpus_not_in_utf8_is_read_in_its_encoding_with_one_warning(tmp_path):
    # embed stopped with "not UTF-8, re-save it" on a GBK corpus that text folders and CSV files read
    lines = ["这家酒店的服务非常好，房间也很干净。", "位置不错，早餐一般。", "前台热情，下次还会再来"] * 3
    corpus = tmp_path / "zh.txt"
    corpus.write_bytes("\r\n".join(lines).encode("gbk"))
    with pytest.warns(DeepmineWarning) as caught:
        assert read_documents(corpus)[0] == lines
    assert [str(w.message) for w in caught] == [
        f"'{corpus}' is not UTF-8; read it as gb18030; re-save it as UTF-8 if its text looks wrong"
    ]
    folder = tmp_path / "zh"  # a folder: one warning for its files, worded as for a text folder
    folder.mkdir()
    (folder / "a.txt.gz").write_bytes(gzip.compress("\n".join(lines).encode("gbk")))
    _write(folder / "b.txt", "plain UTF-8 ✓\n")
    with pytest.warns(DeepmineWarning) as caught:
        assert read_documents(folder)[0] == [*lines, "plain UTF-8 ✓"]
    assert [str(w.message) for w in caught] == [
        f"'{folder}': 1 of 2 .txt files are not UTF-8 (e.g. 'a.txt.gz'); read them as gb18030; "
        "re-save them as UTF-8 if their texts look wrong"
    ]
    short = tmp_path / "short"  # short GBK files alone read as cp949 or big5 (garbage); together as gb18030
    short.mkdir()
    reviews = ["房间干净，服务很好", "早餐太差了，不推荐", "位置方便，价格合理", "前台态度冷淡，失望"]
    for i, review in enumerate(reviews):
        (short / f"{i}.txt").write_bytes(review.encode("gbk"))
    with pytest.warns(DeepmineWarning, match=r"4 of 4 .txt files are not UTF-8 .*; read them as gb18030; "):
        assert read_documents(short)[0] == reviews
    (tmp_path / "binary.txt").write_bytes(b"\x00\x81\xfe binary")  # nothing decodes it: still an error
    with pytest.raises(DataError, match=r"is not UTF-8 text \(byte 0x81 at offset 1\) .* re-save it as UTF-8$"):
        read_documents(tmp_path / "binary.txt")


def test_auto_tokenizer_picks_jieba_for_chinese_and_segments_it():
    chinese = ["这个酒店的服务非常好，房间也很干净。", "位置不错，早餐一般。"]
    assert resolve_tokenizer(chinese)[0] == "jieba"
    assert resolve_tokenizer(["The room was clean."])[0] == "word"
    assert resolve_tokenizer(chinese, "char") == ("char", "as asked")
    with pytest.raises(ConfigError, match="unknown tokenizer 'jeiba' \\(did you mean 'jieba'\\?\\)"):
        resolve_tokenizer(chinese, "jeiba")
    vectors = deepmine.embed(chinese * 5, dim=4, min_count=1, epochs=1)
    assert "酒店" in vectors and "干净" in vectors  # words, not characters
    by_char = deepmine.embed(chinese * 5, dim=4, min_count=1, epochs=1, tokenizer="char")
    assert "酒" in by_char and "酒店" not in by_char


def test_help_does_not_import_gensim_and_lists_the_commands():
    code = (
        "import sys\nfrom deepmine.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('LOADED:' + ','.join(m for m in ('gensim', 'jieba', 'numpy') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "LOADED:"
    assert "embed" in done.stdout and "neighbors" in done.stdout


def test_vectors_built_directly_drop_repeated_words_too():
    vectors = WordVectors(["a", "b", "a"], np.asarray([[1.0, 0.0], [0.0, 1.0], [1.0, 0.01]]))
    assert vectors.words == ["a", "b"] and vectors.matrix.shape == (2, 2)
    assert vectors.nearest("a", 5) == [("b", pytest.approx(0.0, abs=1e-6))]
