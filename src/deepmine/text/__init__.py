"""Text: tokenizers, vocabularies, encoders, word vectors, text classification and tagging."""
