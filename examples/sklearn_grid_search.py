"""TabularClassifier inside a scikit-learn grid search, on the bundled breast-cancer table."""

from __future__ import annotations

from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import GridSearchCV

from deepmine import TabularClassifier

if __name__ == "__main__":
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    search = GridSearchCV(TabularClassifier(epochs=15), {"module__hidden": [[32], [128, 64]]}, cv=3)
    search.fit(X, y)
    print("best:", search.best_params_, "cv accuracy:", round(search.best_score_, 4))
