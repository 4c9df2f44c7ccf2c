"""Explanations: permutation importance (global, any model) and Integrated Gradients per row (tables)."""

from deepmine.explain.integrated_gradients import integrated_gradients
from deepmine.explain.permutation import permutation_importance

__all__ = ["integrated_gradients", "permutation_importance"]
