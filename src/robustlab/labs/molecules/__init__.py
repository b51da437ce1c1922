"""The molecule lab: SMILES sequence classifiers (one-hot MLP, LSTM, BiLSTM) for binary molecular
properties such as blood–brain-barrier penetration, with k-fold cross-validation on random and
scaffold-grouped folds, fingerprint baselines, and a robustness audit in the molecule's own modality
(SMILES enumeration: one molecule, many valid strings, one answer expected)."""
