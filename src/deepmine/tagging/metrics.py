"""Entity-level precision, recall and F1 counted exactly as conlleval counts them (micro over entities).

conlleval reads both tag columns token by token with its chunk rules; a guessed entity is correct when it
starts and ends where a true one does, with the same type. Figures are fractions (conlleval prints percent).
E-/S- tags (BIOES, which conlleval predates) follow the BIOES-aware ports of conlleval; a type is everything
after the first hyphen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from deepmine.tagging.schemes import OUTSIDE, chunk_end, chunk_start, split_tag


def _split(tag: str, raw: bool) -> tuple[str, str]:
    if raw:  # conlleval -r: every non-O tag is a one-token chunk
        return (OUTSIDE, "") if tag == OUTSIDE else ("S", tag)
    return split_tag(tag)


def count_chunks(truth: Sequence[Sequence[str]], guess: Sequence[Sequence[str]], raw: bool = False) -> dict[str, Any]:
    """conlleval's counters over sentences: correct/found-true/found-guessed chunks (per type) and tokens."""
    correct, found_true, found_guess = Counter(), Counter(), Counter()
    tokens = right_tokens = 0
    in_correct = False
    last_t, last_g, last_tt, last_gt = OUTSIDE, OUTSIDE, "", ""
    for gold_sentence, guess_sentence in zip(truth, guess, strict=True):
        boundary = [(OUTSIDE, OUTSIDE)]  # conlleval reads a blank line as a boundary token tagged O/O
        for gold_tag, guess_tag in [*zip(gold_sentence, guess_sentence, strict=True), *boundary]:
            t, tt = _split(gold_tag, raw)
            g, gt = _split(guess_tag, raw)
            end_t, end_g = chunk_end(last_t, t, last_tt, tt), chunk_end(last_g, g, last_gt, gt)
            if in_correct:
                if end_t and end_g and last_gt == last_tt:
                    in_correct = False
                    correct[last_tt] += 1
                elif end_t != end_g or gt != tt:
                    in_correct = False
            start_t, start_g = chunk_start(last_t, t, last_tt, tt), chunk_start(last_g, g, last_gt, gt)
            if start_t and start_g and gt == tt:
                in_correct = True
            if start_t:
                found_true[tt] += 1
            if start_g:
                found_guess[gt] += 1
            last_t, last_g, last_tt, last_gt = t, g, tt, gt
        tokens += len(gold_sentence)
        right_tokens += sum(a == b for a, b in zip(gold_sentence, guess_sentence, strict=True))
    return {
        "correct": correct,
        "true": found_true,
        "guessed": found_guess,
        "tokens": tokens,
        "right_tokens": right_tokens,
    }


def _prf(correct: int, true: int, guessed: int) -> dict[str, float]:
    precision = correct / guessed if guessed else 0.0
    recall = correct / true if true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def entity_scores(truth: Sequence[Sequence[str]], guess: Sequence[Sequence[str]], raw: bool = False) -> dict[str, Any]:
    """``f1``, ``precision``, ``recall`` (fractions, micro over entities), token ``accuracy`` and ``per_type``."""
    counts = count_chunks(truth, guess, raw)
    correct, true, guessed = counts["correct"], counts["true"], counts["guessed"]
    types = sorted(set(true) | set(guessed))
    overall = _prf(sum(correct.values()), sum(true.values()), sum(guessed.values()))
    return {
        **overall,
        "accuracy": counts["right_tokens"] / counts["tokens"] if counts["tokens"] else 0.0,
        "entities": sum(true.values()),
        "predicted_entities": sum(guessed.values()),
        "sentences": len(truth),
        "tokens": counts["tokens"],
        "per_type": {kind: {**_prf(correct[kind], true[kind], guessed[kind]), "support": true[kind]} for kind in types},
    }
