"""Non-neural baselines on the same folds: a random forest on Morgan fingerprints (what every user of
the field asks for first; its fingerprint is the same for every SMILES of a molecule, so its
enumeration flip rate is exactly 0 — a test of the invariance test) and a logistic regression on the
SMILES length alone (how much of the label the length gives away)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from robustlab.labs.molecules import chem


class MorganForest:
    """Random forest (scikit-learn) on Morgan bit vectors of radius 2."""

    def __init__(self, trees: int = 500, bits: int = 2048, seed: int = 0) -> None:
        from sklearn.ensemble import RandomForestClassifier

        self.bits = bits
        self.model = RandomForestClassifier(n_estimators=trees, random_state=seed, n_jobs=1)

    def fit(self, smiles: Sequence[str], y: np.ndarray) -> MorganForest:
        self.model.fit(chem.morgan(smiles, bits=self.bits), y)
        return self

    def predict(self, smiles: Sequence[str]) -> np.ndarray:
        """Positive-class probability per SMILES."""
        return self.model.predict_proba(chem.morgan(smiles, bits=self.bits))[:, 1]


class LengthOnly:
    """Logistic regression on (length, log length) of the SMILES string in characters."""

    def __init__(self) -> None:
        from sklearn.linear_model import LogisticRegression

        self.model = LogisticRegression(max_iter=1000)

    @staticmethod
    def _x(smiles: Sequence[str]) -> np.ndarray:
        n = np.asarray([len(s) for s in smiles], dtype=np.float64)
        return np.stack([n / 100.0, np.log(n)], 1)

    def fit(self, smiles: Sequence[str], y: np.ndarray) -> LengthOnly:
        self.model.fit(self._x(smiles), y)
        return self

    def predict(self, smiles: Sequence[str]) -> np.ndarray:
        return self.model.predict_proba(self._x(smiles))[:, 1]
