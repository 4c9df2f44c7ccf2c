"""Explanations: permutation importance (global, any model), Integrated Gradients per row (tables) and the
tokens of a text column that moved a row's prediction."""

from deepmine.explain.integrated_gradients import integrated_gradients
from deepmine.explain.permutation import permutation_importance
from deepmine.explain.tokens import add_token_attributions, token_attributions

__all__ = ["add_token_attributions", "integrated_gradients", "permutation_importance", "token_attributions"]
