"""Tagging: readers, tag schemes, conlleval-exact metrics, the CRF against brute force, fit/predict/CLI."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import recorded_run

from deepmine.exceptions import DataError
from deepmine.nn.crf import CRF
from deepmine.tagging.config import TaggingRunConfig
from deepmine.tagging.metrics import count_chunks, entity_scores
from deepmine.tagging.readers import Sentence, read_conll, read_for_prediction, read_jsonl, read_tagged, tokenize
from deepmine.tagging.schemes import Span, allowed_transitions, convert, detect, internal_tags, spans

# ---- synthetic corpus --------------------------------------------------------------------------------
FIRST = ["Anna", "Boris", "Chen", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kofi", "Lena"]
LAST = ["Smith", "Ivanov", "Wang", "Garcia", "Okafor", "Tanaka", "Müller", "Rossi"]
CITIES = ["Paris", "Lagos", "Osaka", "Lima", "Oslo", "Quito", "Dakar", "Perth", "Turin", "Hanoi"]
VERBS = ["visited", "left", "loves", "described", "saw"]


def _sentence(rng: random.Random) -> tuple[list[str], list[str], list[str]]:
    """A person (1-2 tokens), a verb, a city, optional trailing words; POS-like feature column."""
    name = [rng.choice(FIRST)] + ([rng.choice(LAST)] if rng.random() < 0.5 else [])
    tokens = ["Yesterday", ","] if rng.random() < 0.3 else []
    tags = ["O", "O"] if tokens else []
    tokens += name + [rng.choice(VERBS), rng.choice(CITIES), "."]
    tags += ["B-PER"] + ["I-PER"] * (len(name) - 1) + ["O", "B-LOC", "O"]
    pos = ["NNP" if t != "O" else "X" for t in tags]
    return tokens, tags, pos


def corpus(n: int, seed: int) -> list[Sentence]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        tokens, tags, pos = _sentence(rng)
        out.append(Sentence(tokens, tags, [pos]))
    return out


def write_conll(path: Path, sentences: list[Sentence]) -> Path:
    lines = ["-DOCSTART- -X- O", ""]
    for s in sentences:
        lines += [" ".join([tok, *[f[i] for f in s.features], s.tags[i]]) for i, tok in enumerate(s.tokens)] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


TINY = {"model.word_dim": 16, "model.char_dim": 8, "model.char_filters": 16, "model.hidden": 24}


def tiny_config(**extra) -> TaggingRunConfig:
    from deepmine.config import build_config

    settings = {**TINY, "trainer.epochs": 12, "trainer.batch_size": 16, "optimizer.lr": 0.01, **extra}
    return build_config(None, settings, schema=TaggingRunConfig, aliases={}, command="test")


@pytest.fixture(scope="module")
def fitted():
    from deepmine.tagging.fit import fit_tagger

    return fit_tagger(corpus(160, 0), tiny_config(), corpus(40, 1))


# ---- readers -----------------------------------------------------------------------------------------
def test_conll_reader_skips_docstart_and_extra_blank_lines(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("-DOCSTART- -X- -X- O\n\n\nEU NNP B-ORG\nrejects VBZ O\n\n\n\nPeter NNP B-PER\n", encoding="utf-8")
    got = read_conll(path)
    assert [s.tokens for s in got] == [["EU", "rejects"], ["Peter"]]
    assert got[0].tags == ["B-ORG", "O"] and got[0].features == [["NNP", "VBZ"]]


def test_conll_reader_names_file_and_line_of_a_bad_line(tmp_path):
    path = tmp_path / "bad.conll"
    path.write_text("EU NNP B-ORG\nrejects O\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.conll:2: 2 columns where the file's lines have 3"):
        read_conll(path)
    path.write_text("lonely\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.conll:1: one column"):
        read_conll(path)


def test_jsonl_reader_and_its_errors(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"tokens": ["Hi", "Ann"], "tags": ["O", "B-PER"]}\n\n', encoding="utf-8")
    assert read_tagged(path)[0].tags == ["O", "B-PER"]
    path.write_text('{"tokens": ["Hi", "Ann"], "tags": ["O"]}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"s\.jsonl:1: 2 tokens but 1 tags"):
        read_jsonl(path)
    path.write_text('{"tokens": ["Hi"], "tags": ["O"]}\n{"tokens": oops}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"s\.jsonl:2: not valid JSON"):
        read_jsonl(path)


def test_prediction_reader_tells_conll_from_plain_text(tmp_path):
    conll = tmp_path / "c.txt"
    conll.write_text("Ann NNP B-PER\nleft VBD O\n\nBob NNP B-PER\n", encoding="utf-8")
    got = read_for_prediction(conll, features=1)
    assert [s.tokens for s in got] == [["Ann", "left"], ["Bob"]] and got[0].features == [["NNP", "VBD"]]
    plain = tmp_path / "p.txt"
    plain.write_text("Ann left Paris.\n\nBob saw Lima, again!\n", encoding="utf-8")
    got = read_for_prediction(plain, features=1)  # a blank line is an empty sentence: one output per input line
    assert [s.tokens for s in got] == [["Ann", "left", "Paris", "."], [], ["Bob", "saw", "Lima", ",", "again", "!"]]


def test_prediction_reader_takes_conll_with_other_feature_columns_than_the_model(tmp_path):
    two = tmp_path / "two.txt"  # token and tag only, for a model trained on token POS chunk tag
    two.write_text("Ann B-PER\nleft O\n\nBob B-PER\n", encoding="utf-8")
    got = read_for_prediction(two, features=2)
    assert [s.tokens for s in got] == [["Ann", "left"], ["Bob"]] and got[0].features == []
    one = tmp_path / "one.txt"
    one.write_text("Ann\nleft\n\nBob\n", encoding="utf-8")
    assert [s.tokens for s in read_for_prediction(one, features=2)] == [["Ann", "left"], ["Bob"]]
    four = tmp_path / "four.txt"  # CoNLL-2003 columns for a model trained without features
    four.write_text("Ann NNP B-NP B-PER\nleft VBD B-VP O\n\nBob NNP B-NP B-PER\n", encoding="utf-8")
    got = read_for_prediction(four, features=0)
    assert [s.tokens for s in got] == [["Ann", "left"], ["Bob"]]
    assert got[0].features == [["NNP", "VBD"], ["B-NP", "B-VP"]]
    chunks = tmp_path / "chunks.txt"  # token POS chunk, no tag: the model's width + 1, the chunk is a feature
    chunks.write_text("Ann NNP B-NP\nleft VBD B-VP\n\nBob NNP B-NP\n", encoding="utf-8")
    assert read_for_prediction(chunks, features=2)[0].features == [["NNP", "VBD"], ["B-NP", "B-VP"]]
    words = tmp_path / "words.txt"  # two words a line whose second is no tag stays plain text
    words.write_text("Ann left\n\nBob came\n", encoding="utf-8")
    assert [s.tokens for s in read_for_prediction(words, features=2)] == [["Ann", "left"], [], ["Bob", "came"]]


def test_tokenize_splits_punctuation_emoji_and_keeps_scripts():
    assert tokenize("Dr. Müller (Berlin) met 李明 😀!") == [
        "Dr",
        ".",
        "Müller",
        "(",
        "Berlin",
        ")",
        "met",
        "李明",
        "😀",
        "!",
    ]
    assert tokenize("") == []


# ---- schemes -----------------------------------------------------------------------------------------
IOB1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG", "O"]
IOB2 = ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG", "O"]
BIOES = ["B-PER", "E-PER", "S-PER", "O", "S-LOC", "S-ORG", "O"]


def test_schemes_are_detected_and_convert_both_ways():
    assert [detect([t]) for t in (IOB1, IOB2, BIOES)] == ["iob1", "iob2", "bioes"]
    assert detect([["NN", "VBZ", "O"]]) == "raw"
    expected = [Span("PER", 0, 2), Span("PER", 2, 3), Span("LOC", 4, 5), Span("ORG", 5, 6)]
    assert spans(IOB1, "iob1") == spans(IOB2, "iob2") == spans(BIOES, "bioes") == expected
    names = {"iob1": IOB1, "iob2": IOB2, "bioes": BIOES}
    for source, target in itertools.permutations(names, 2):
        assert convert(names[source], source, target) == names[target], (source, target)


def test_bioes_constraints_forbid_invalid_moves():
    tags = internal_tags(["PER", "LOC"], "bioes")
    allowed, start, end = allowed_transitions(tags, "bioes")
    at = {t: i for i, t in enumerate(tags)}
    assert not allowed[at["O"], at["I-PER"]] and not allowed[at["B-PER"], at["E-LOC"]]
    assert allowed[at["B-PER"], at["E-PER"]] and allowed[at["E-PER"], at["B-LOC"]] and allowed[at["S-LOC"], at["O"]]
    assert not start[at["I-PER"]] and start[at["S-PER"]] and not end[at["B-LOC"]] and end[at["E-LOC"]]


# ---- conlleval parity (hand-worked, as conlleval counts) ------------------------------------------------
def test_conlleval_counts_hand_worked_examples():
    # IOB2; guess cuts the person short (wrong) and finds the location (right): P = R = 1/2.
    s = entity_scores([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "O", "O", "B-LOC"]])
    assert (s["precision"], s["recall"], s["f1"]) == (0.5, 0.5, 0.5)
    # conlleval: a stray I-LOC after O opens a chunk, so it matches the true B-LOC.
    assert entity_scores([["O", "B-LOC"]], [["O", "I-LOC"]])["f1"] == 1.0
    # A type change inside a chunk splits it: guessed PER(0,1) and LOC(1,2), true PER(0,2): nothing correct.
    s = entity_scores([["B-PER", "I-PER"]], [["B-PER", "I-LOC"]])
    assert (s["entities"], s["predicted_entities"], s["f1"]) == (1, 2, 0.0)


def test_conlleval_iob1_special_cases():
    # IOB1: B- only separates two adjacent chunks of one type. True: PER(0,2) PER(2,3); guess: PER(0,3).
    c = count_chunks([["I-PER", "I-PER", "B-PER", "O"]], [["I-PER", "I-PER", "I-PER", "O"]])
    assert (sum(c["correct"].values()), c["true"]["PER"], c["guessed"]["PER"]) == (0, 2, 1)
    # A sentence boundary closes a chunk: I-PER at the end of one sentence and the start of the next = two.
    c = count_chunks([["O", "I-PER"], ["I-PER", "O"]], [["O", "I-PER"], ["I-PER", "O"]])
    assert (c["true"]["PER"], sum(c["correct"].values())) == (2, 2)
    # Token accuracy counts tags, entity figures count chunks: 3 of 4 tags right, 1 of 2 entities.
    s = entity_scores([["I-ORG", "O", "I-LOC", "I-LOC"]], [["I-ORG", "O", "I-LOC", "O"]])
    assert (s["accuracy"], s["recall"], s["per_type"]["LOC"]["f1"], s["per_type"]["ORG"]["f1"]) == (0.75, 0.5, 0, 1)


def test_conlleval_correct_chunks_equal_exact_span_matches_on_random_tags():
    rng = random.Random(3)
    choices = ["O", "B-A", "I-A", "B-B", "I-B", "E-A", "S-B"]
    for _ in range(200):
        truth = [[rng.choice(choices) for _ in range(rng.randint(1, 8))] for _ in range(3)]
        guess = [[rng.choice(choices) for _ in t] for t in truth]
        counted = sum(count_chunks(truth, guess)["correct"].values())
        matched = sum(len(set(spans(t)) & set(spans(g))) for t, g in zip(truth, guess, strict=True))
        assert counted == matched, (truth, guess)


# ---- CRF against brute force ---------------------------------------------------------------------------
def _brute_force(crf: CRF, emissions: torch.Tensor, length: int) -> tuple[torch.Tensor, list[int]]:
    trans, start, end = (t.detach() for t in crf.scores())
    scores = {}
    for path in itertools.product(range(crf.num_tags), repeat=length):
        score = start[path[0]] + end[path[-1]] + sum(emissions[t, y] for t, y in enumerate(path))
        score = score + sum(trans[a, b] for a, b in itertools.pairwise(path))
        scores[path] = score
    values = torch.stack(list(scores.values()))
    return torch.logsumexp(values, 0), list(max(scores, key=lambda p: scores[p].item()))


@pytest.mark.parametrize("constrained", [False, True])
def test_crf_matches_brute_force_enumeration(constrained):
    torch.manual_seed(0)
    tags = internal_tags(["X"], "bioes")  # O B-X I-X E-X S-X
    crf = CRF(len(tags), *allowed_transitions(tags, "bioes")) if constrained else CRF(len(tags))
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    emissions = torch.randn(4, 5, len(tags)) * 2
    lengths = torch.tensor([5, 3, 1, 4])
    mask = torch.arange(5).unsqueeze(0) < lengths.unsqueeze(1)
    log_z = crf.log_partition(emissions, mask)
    best = crf.decode(emissions, mask)
    gold = torch.randint(0, len(tags), (4, 5))
    nll = crf.neg_log_likelihood(emissions, gold, mask)
    for row, length in enumerate(lengths.tolist()):
        expected_z, expected_path = _brute_force(crf, emissions[row], length)
        assert torch.allclose(log_z[row], expected_z, atol=1e-4)
        assert best[row, :length].tolist() == expected_path
        assert best[row, length:].eq(0).all()
        gold_score = crf.path_score(
            emissions[row : row + 1, :length], gold[row : row + 1, :length], mask[row : row + 1, :length]
        )
        assert torch.allclose(nll[row], expected_z - gold_score[0], atol=1e-4)
        if constrained:  # the best path is a valid BIOES sequence
            decoded = [tags[i] for i in expected_path]
            assert convert(decoded, "bioes", "bioes") == decoded
            assert convert(convert(decoded, "bioes", "iob2"), "iob2", "bioes") == decoded


def test_crf_gradient_reaches_every_parameter():
    crf = CRF(3)
    emissions = torch.randn(2, 4, 3, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    crf.neg_log_likelihood(emissions, torch.zeros(2, 4, dtype=torch.long), mask).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in crf.parameters())
    assert emissions.grad[1, 2:].abs().sum() == 0  # padded steps take no gradient


# ---- fitting and predicting ----------------------------------------------------------------------------
def test_fit_learns_the_synthetic_corpus(fitted):
    scores = fitted.score(corpus(60, 7))
    assert scores["f1"] >= 0.95, scores
    assert set(scores["per_type"]) == {"PER", "LOC"}
    assert fitted.scheme == "iob2" and fitted.types == ["LOC", "PER"]


def test_predict_returns_tags_and_entity_spans(fitted):
    (row,) = fitted.predict([["Yesterday", ",", "Grace", "Tanaka", "visited", "Oslo", "."]])
    assert row["tags"] == ["O", "O", "B-PER", "I-PER", "O", "B-LOC", "O"]
    assert row["entities"] == [
        {"type": "PER", "start": 2, "end": 4, "text": "Grace Tanaka"},
        {"type": "LOC", "start": 5, "end": 6, "text": "Oslo"},
    ]


def test_predict_on_unseen_words_empty_emoji_mixed_scripts_and_long_input(fitted):
    rows = fitted.predict(["Zyxwv Qrstu visited Vbnmk .", "", "Anna 😀 visited 東京 and Москва 🎉 .", "Lena " * 3000])
    assert [len(r["tags"]) for r in rows] == [5, 0, 8, 3000]
    assert rows[1] == {"tokens": [], "tags": [], "entities": []}
    assert rows[0]["tags"][2] == "O" and rows[2]["tags"][0] == "B-PER"
    for r in rows:  # every output is a valid IOB2 sequence in the training file's scheme
        assert convert(r["tags"], "iob2", "iob2") == r["tags"]
        assert all(0 <= e["start"] < e["end"] <= len(r["tokens"]) for e in r["entities"])


def test_predict_on_a_one_megabyte_string(fitted):
    text = ("Anna Smith visited Paris 😀 and 東京. " * 30000)[:1_000_000]
    (row,) = fitted.predict(text)
    assert len(row["tokens"]) == len(row["tags"]) == len(tokenize(text)) > 200_000
    assert row["entities"][0] == {"type": "PER", "start": 0, "end": 2, "text": "Anna Smith"}
    assert all(e["text"] == " ".join(row["tokens"][e["start"] : e["end"]]) for e in row["entities"])


def test_jsonl_training_without_validation_holds_sentences_out(tmp_path):
    from deepmine.tagging.fit import fit_tagger

    path = tmp_path / "train.jsonl"
    rows = [{"tokens": s.tokens, "tags": s.tags, "features": s.features} for s in corpus(50, 0)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    model = fit_tagger(read_tagged(path), tiny_config(**{"trainer.epochs": 1}))
    assert (model.training["sentences"], model.training["valid_sentences"]) == (45, 5)
    assert len(model.encoder.features) == 1 and model.metrics["valid"]["sentences"] == 5


def test_an_iob1_corpus_trains_and_predicts_in_iob1():
    from deepmine.tagging.fit import fit_tagger

    def iob1(sentences):
        return [Sentence(s.tokens, convert(s.tags, "iob2", "iob1"), s.features) for s in sentences]

    model = fit_tagger(iob1(corpus(120, 0)), tiny_config(), iob1(corpus(30, 1)))
    assert model.scheme == "iob1"
    rows = model.predict([["Chen", "Wang", "saw", "Lima", "."]])
    assert rows[0]["tags"] == ["I-PER", "I-PER", "O", "I-LOC", "O"]
    assert model.score(corpus(30, 5))["scheme"] == "iob2"  # an IOB2 test file is scored in IOB2


def test_same_seed_same_predictions_and_other_seed_differs():
    from deepmine.tagging.fit import fit_tagger

    train, valid = corpus(60, 0), corpus(20, 1)
    config = tiny_config(**{"trainer.epochs": 2})
    a, b = fit_tagger(train, config, valid), fit_tagger(train, config, valid)
    other = fit_tagger(train, tiny_config(**{"trainer.epochs": 2, "seed": 7}), valid)
    weights = [dict(m.model.state_dict()) for m in (a, b, other)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])
    probe = [s.tokens for s in corpus(30, 9)]
    assert a.predict(probe) == b.predict(probe)


def test_artifact_round_trip_in_a_fresh_process(fitted, tmp_path):
    import deepmine

    path = fitted.save(tmp_path / "tagger")
    manifest = json.loads((path / "deepmine.json").read_text(encoding="utf-8"))
    assert manifest["kind"] == "tagger" and sorted(p.name for p in path.iterdir()) == [
        "checksum.sha256",
        "deepmine.json",
        "weights.safetensors",
    ]
    texts = ["Ines Rossi saw Perth .", "Boris loves Quito and 😀"]
    expected = fitted.predict(texts)
    assert deepmine.load(path).predict(texts) == expected
    code = f"import json, deepmine; print(json.dumps(deepmine.load({str(path)!r}).predict({texts!r})))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected


# ---- CLI -------------------------------------------------------------------------------------------------
def test_cli_fit_evaluate_predict(tmp_path, run_cli):
    train = write_conll(tmp_path / "train.txt", corpus(120, 0))
    valid = write_conll(tmp_path / "dev.txt", corpus(30, 1))
    test = write_conll(tmp_path / "test.txt", corpus(40, 2))
    out = tmp_path / "model"
    settings = [f"{k}={v}" for k, v in {**TINY, "trainer.epochs": 10, "trainer.batch_size": 16}.items()]
    args = ["fit", train, "--task", "tagging", "--valid", valid, "--out", out, "--json", "--set", "optimizer.lr=0.01"]
    done = run_cli(*args, *[x for s in settings for x in ("--set", s)])
    assert done.code == 0, done.err
    fitted = json.loads(done.out)
    assert fitted["scheme"] == "iob2" and fitted["features"] == 1 and fitted["sentences"] == 120
    run = recorded_run(fitted["run_id"])  # tagging fits are tracked like table fits
    assert run["status"] == "FINISHED" and run["tags"]["deepmine.task"] == "tagging"
    assert run["metrics"]["f1"] == pytest.approx(fitted["f1"]) and run["metrics"]["fit_sentences"] == 120
    assert len(run["metrics"]) > 4 and "artifact/deepmine.json" in run["files"]
    done = run_cli("evaluate", out, test, "--json")
    assert done.code == 0, done.err
    scores = json.loads(done.out)
    assert scores["f1"] > 0.9 and 0 <= scores["precision"] <= 1 and set(scores["per_type"]) == {"LOC", "PER"}
    plain = tmp_path / "plain.txt"
    plain.write_text("Kofi Garcia visited Lima .\nHiro left Dakar !\n", encoding="utf-8")
    done = run_cli("predict", out, plain)
    assert done.code == 0, done.err
    rows = [json.loads(line) for line in done.out.splitlines()]
    assert [r["tokens"][0] for r in rows] == ["Kofi", "Hiro"]
    assert {"type", "start", "end", "text"} == set(rows[0]["entities"][0])


def test_cli_evaluate_scores_an_entity_type_never_trained_on_and_warns_once(fitted, tmp_path, run_cli):
    model = fitted.save(tmp_path / "model")
    test = corpus(20, 3)
    for s in test:  # the cities become dates: a type the model never saw
        s.tags = [t.replace("-LOC", "-DATE") for t in s.tags]
    path = write_conll(tmp_path / "dates.txt", test)
    done = run_cli("evaluate", model, path, "--json")
    assert done.code == 0, done.err
    metrics = json.loads(done.out)
    assert metrics["per_type"]["DATE"]["support"] == 20 and metrics["per_type"]["DATE"]["recall"] == 0.0  # scored
    warned = [line for line in done.err.splitlines() if "never occurred in training" in line]
    assert len(warned) == 1 and f"{path}: entity type(s) DATE (20)" in warned[0]
    assert "trained types: LOC, PER" in warned[0]
    assert "never occurred" not in run_cli("evaluate", model, write_conll(tmp_path / "same.txt", corpus(5, 4))).err


def test_cli_predict_tags_one_column_of_a_table_row_by_row(fitted, tmp_path, run_cli):
    import pandas as pd

    model = fitted.save(tmp_path / "model")
    table = tmp_path / "notes.csv"
    texts = ["Kofi Garcia visited Lima, then Oslo.", "", "Hiro left Dakar !"]
    frame = pd.DataFrame({"id": [7, 8, 9], "source": ["mail", "web", "chat"], "text": texts})
    frame.to_csv(table, index=False)  # the empty text is a missing value in the CSV
    done = run_cli("predict", model, table, "--id", "id")
    assert done.code == 0, done.err
    rows = [json.loads(line) for line in done.out.splitlines()]
    assert [r["id"] for r in rows] == ["7", "8", "9"]  # one row per table row, the blank one kept; ids as written
    assert rows[0]["tokens"][:2] == ["Kofi", "Garcia"] and rows[1]["tokens"] == [] and rows[2]["tokens"][0] == "Hiro"
    assert rows[0]["tokens"] == fitted.predict(texts[0])[0]["tokens"]  # the text column, not the CSV line
    assert {e["text"] for e in rows[0]["entities"]} >= {"Kofi Garcia", "Lima"}
    out = tmp_path / "tags.csv"
    done = run_cli("predict", model, table, "--id", "id", "-o", out)
    assert done.code == 0, done.err
    written = pd.read_csv(out, keep_default_na=False)
    assert list(written.columns) == ["id", "tokens", "tags", "entities"]
    assert written["tags"].tolist() == [" ".join(r["tags"]) for r in rows]
    assert json.loads(written["entities"][0]) == rows[0]["entities"]
    assert fitted.predict(frame) == [{k: v for k, v in r.items() if k != "id"} for r in rows]  # DataFrames too

    two = tmp_path / "two.csv"
    pd.DataFrame({"title": ["Anna saw Perth .", "x"], "body": ["Hiro left Dakar .", "y"]}).to_csv(two, index=False)
    done = run_cli("predict", model, two)
    assert done.code == 1 and "['title', 'body']" in done.err and "--column" in done.err
    assert len(done.err.strip().splitlines()) == 1
    done = run_cli("predict", model, two, "--column", "body")
    assert done.code == 0, done.err
    assert json.loads(done.out.splitlines()[0])["tokens"][0] == "Hiro"
    done = run_cli("predict", model, two, "--column", "summary")
    assert done.code == 1 and "'summary'" in done.err and "title" in done.err
    conll = write_conll(tmp_path / "dev.tsv", corpus(5, 3))  # CoNLL named .tsv: still read as token lines
    done = run_cli("predict", model, conll, "-o", tmp_path / "tags.txt")
    assert done.code == 0, done.err
    lines = (tmp_path / "tags.txt").read_text(encoding="utf-8").splitlines()  # .txt: JSON lines, not a table
    assert [json.loads(line)["tokens"] for line in lines] == [s.tokens for s in corpus(5, 3)]
    assert run_cli("predict", model, conll, "-o", tmp_path / "tags.jsonl.gz").code == 0
    import gzip

    assert gzip.decompress((tmp_path / "tags.jsonl.gz").read_bytes()).decode("utf-8").splitlines() == lines
    plain = tmp_path / "plain.txt"
    plain.write_text("Anna saw Perth .\n", encoding="utf-8")
    done = run_cli("predict", model, plain, "--column", "body")
    assert done.code == 2 and "--column applies to tables" in done.err


def test_cli_errors_are_one_line(tmp_path, run_cli):
    bad = tmp_path / "bad.txt"
    bad.write_text("Ann NNP B-PER\nleft O\n", encoding="utf-8")
    done = run_cli("fit", bad, "--task", "tagging")
    assert done.code == 1 and "bad.txt:2:" in done.err and "Traceback" not in done.err
    assert len(done.err.strip().splitlines()) == 1
    done = run_cli("fit", tmp_path / "missing.txt", "--task", "tagging")
    assert done.code == 1 and "does not exist" in done.err
    good = write_conll(tmp_path / "good.txt", corpus(10, 0))
    done = run_cli("fit", good, "--task", "tagging", "--set", "model.hidden=0")
    assert done.code == 2 and "model.hidden" in done.err
    done = run_cli("fit", good, "--task", "tagging", "--target", "NER")
    assert done.code == 2 and "--target" in done.err


def test_feature_dropout_blanks_whole_sentences_features_as_plain_text_reads_them():
    from deepmine.tagging.encode import OOV, TagBatches, TagEncoder

    sentences = corpus(64, 3)
    encoder = TagEncoder.build(sentences, tiny_config().tagging, "iob2", use_features=True)
    items = [encoder.encode(s) for s in sentences]
    plain = encoder.encode(Sentence(sentences[0].tokens))  # no feature columns: every feature is unknown
    assert (plain.features == OOV).all() and not (items[0].features == OOV).any()

    def features(dropout: float) -> torch.Tensor:
        source = TagBatches(items, 64, 0.0, encoder.state["singletons_from"], dropout)
        ((inputs, _),) = list(source.epoch(torch.Generator().manual_seed(0)))
        return inputs[3], inputs[4]

    kept, lengths = features(0.0)
    dropped, _ = features(0.5)
    real = torch.arange(kept.shape[2])[None, :] < lengths[:, None]  # token positions, not padding
    blanked = [bool((dropped[i, :, real[i]] == OOV).all()) for i in range(len(items))]
    assert 15 < sum(blanked) < 49  # about half the sentences read as plain text
    for i, gone in enumerate(blanked):
        assert torch.equal(dropped[i, :, ~real[i]], kept[i, :, ~real[i]])  # padding stays 0
        if not gone:
            assert torch.equal(dropped[i], kept[i])


def test_a_stray_tag_in_an_iob_file_is_named_before_training(tmp_path, run_cli):
    sentences = corpus(30, 4)
    sentences[2].tags[1] = "PERSON-X"
    path = write_conll(tmp_path / "train.txt", sentences)
    done = run_cli("fit", path, "--task", "tagging", "--out", tmp_path / "model")
    assert done.code == 1 and "Traceback" not in done.err
    assert f"{path}: sentence 3, token 2 has tag 'PERSON-X'" in done.err and "IOB/BIOES" in done.err
    assert not (tmp_path / "model").exists()
    with pytest.raises(DataError, match="the test data: sentence 1, token 1 has tag 'Person'"):
        good = corpus(5, 5)
        good[0].tags[0] = "Person"
        from deepmine.tagging.fit import fit_tagger

        fit_tagger(corpus(40, 6), tiny_config(**{"trainer.epochs": 1}), corpus(10, 7)).score(good)


def test_raw_tag_sets_with_hyphens_are_not_mistaken_for_stray_iob_tags():
    from deepmine.tagging.schemes import check_prefixed

    raw = [["NAME", "O", "E-mail", "PHONE"], ["S-Corp", "NAME", "CITY"]]  # plain labels, a few hyphenated
    check_prefixed(raw, "raw.txt")  # most tags carry no prefix: nothing to report
    with pytest.raises(DataError, match=r"sentence 2, token 1 has tag 'PER'.*tagging.scheme=raw"):
        check_prefixed([["B-PER", "I-PER", "O"], ["PER", "B-LOC"]], "typo.txt")
    sentences = corpus(30, 4)
    sentences[2].tags[1] = "PERSON-X"
    from deepmine.tagging.fit import fit_tagger

    fitted = fit_tagger(sentences, tiny_config(**{"trainer.epochs": 1, "tagging.scheme": "raw"}))  # the way out
    assert fitted.scheme == "raw"
