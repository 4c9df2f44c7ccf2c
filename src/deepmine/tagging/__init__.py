"""Sequence tagging (named entities, chunks, POS): readers, tag schemes, conlleval metrics, BiLSTM-CRF tagger."""
