"""A complete lab defined outside robustlab: sequence parity on synthetic bit strings.

It is registered only through the ``robustlab.labs`` entry-point group (the tests write a
``*.dist-info`` folder naming ``toy_lab:LAB``), never by name inside ``src/``. Inputs are token
sequences (ids 0/1 of a fixed length), the label is their parity; the model is an embedding + GRU +
linear head. The task monitors ``perplexity`` (exp of the mean cross-entropy, lower is better) and the
lab adds a split-level metric (ROC-AUC), a bit-flip audit in the sequences' own modality (flipping any
one bit must flip the prediction), a figure, report sections and a summary line.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from torch.utils.data import TensorDataset

from robustlab.core.config import DataConfig, ExperimentConfig, Strict, TrainConfig
from robustlab.data.bundle import DataBundle
from robustlab.data.registry import DATASETS, register_specs
from robustlab.data.spec import DatasetSpec, TokenSequenceInfo
from robustlab.labs.base import Lab, RunContext
from robustlab.report.section import Section, Table
from robustlab.training.metrics import BinaryROCAUC, Metric
from robustlab.training.task import StepOutput


class ToyModelConfig(Strict):
    hidden: int = Field(16, ge=2)
    length: int = Field(5, ge=2, le=16)


class ToyDataConfig(DataConfig):
    dataset: str = "bit-parity"
    examples: int = Field(600, ge=8)


class ToyConfig(ExperimentConfig):
    task: Literal["toy-parity"] = "toy-parity"
    data: ToyDataConfig = Field(default_factory=ToyDataConfig)
    model: ToyModelConfig = Field(default_factory=ToyModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)


class ParityNet(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(2, hidden)
        self.rnn = nn.GRU(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        _, h = self.rnn(self.embed(ids))
        return self.head(h[-1])


class ParityTask:
    name = "toy-parity"
    monitor = "perplexity"
    higher_is_better = False
    directions: ClassVar[dict[str, bool]] = {"accuracy": True}
    num_classes = 2

    def unpack(self, batch: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return batch[0].to(device), batch[1].to(device)

    def forward(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        logits = model(inputs)
        return StepOutput(F.cross_entropy(logits.float(), targets), logits, targets)

    def batch_metrics(self, out: StepOutput) -> dict[str, torch.Tensor]:
        n = out.targets.numel()
        return {"loss": out.loss.detach().float() * n,
                "correct": (out.outputs.detach().argmax(1) == out.targets).sum().float(),
                "count": torch.tensor(float(n))}

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        n = max(sums.get("count", 0.0), 1.0)
        loss = sums["loss"] / n
        return {"loss": loss, "accuracy": sums["correct"] / n, "perplexity": math.exp(loss)}


INFO = TokenSequenceInfo("bit-parity", "random bit strings, label = parity (generated)", 600, 150,
                         vocab_size=2, max_length=5, num_classes=2)


def register_dataset() -> None:
    """The plug-in's dataset, listed by ``robustlab datasets`` beside the images (idempotent)."""
    if INFO.name not in DATASETS:
        register_specs([DatasetSpec(INFO, load=lambda **_: bits(600, 5, 0), available=lambda root: True)])


def bits(n: int, length: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 2, (n, length), generator=g)
    return TensorDataset(x, x.sum(1) % 2)


def collate(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([x for x, _ in batch]), torch.stack([y for _, y in batch])


class ToyParityLab(Lab):
    name = "toy-parity"
    description = "toy: parity of bit strings with a GRU (a plug-in lab defined in the tests)"
    config_model = ToyConfig

    def build_data(self, cfg: ToyConfig, smoke: bool = False) -> DataBundle:
        n, length = (64 if smoke else cfg.data.examples), cfg.model.length
        info = TokenSequenceInfo(cfg.data.dataset, "random bit strings, label = parity", n, n // 4,
                                 vocab_size=2, max_length=length, num_classes=2)
        streams = {"train": bits(n, length, cfg.seed), "val": bits(n // 4, length, cfg.seed + 1),
                   "test": bits(n // 4, length, cfg.seed + 2)}
        return DataBundle(info, streams, collate=collate)

    def model_meta(self, cfg: ToyConfig, data: DataBundle) -> dict[str, Any]:
        return {"vocab": data.info.vocab_size, "length": data.info.max_length}

    def build_model(self, cfg: ToyConfig, meta: dict[str, Any]) -> nn.Module:
        return ParityNet(cfg.model.hidden)

    def build_task(self, cfg: ToyConfig, meta: dict[str, Any]) -> ParityTask:
        return ParityTask()

    def metrics(self, cfg: ToyConfig, meta: dict[str, Any]) -> list[Metric]:
        return [BinaryROCAUC()]

    def evaluate(self, ctx: RunContext) -> dict[str, Any]:
        model = self.load_model(ctx)
        x, y = self.build_data(ctx.cfg, ctx.smoke).test.tensors
        with torch.no_grad():
            pred = model(x).argmax(1)
            flips = []
            for i in range(x.shape[1]):
                xf = x.clone()
                xf[:, i] = 1 - xf[:, i]
                flips.append((model(xf).argmax(1) != pred).float().mean().item())
        return {"toy": {"test_accuracy": float((pred == y).float().mean()),
                        "bit_flip_consistency": sum(flips) / len(flips), "positions": len(flips)}}

    def explain(self, ctx: RunContext) -> dict[str, str]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = ctx.run.metrics()
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.plot([r["epoch"] for r in rows], [r["val_perplexity"] for r in rows])
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation perplexity")
        path = ctx.run.figures / "perplexity.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
        plt.close(fig)
        return {"perplexity": "figures/perplexity.png"}

    def report_sections(self, run_dir: Path, config: dict[str, Any], results: dict[str, Any]) -> list[Section]:
        toy = results.get("toy") or {}
        if not toy:
            return []
        rows = [[k, v] for k, v in toy.items()]
        return [Section(title="Bit-flip audit", key="toy-audit", table=Table(["measure", "value"], rows),
                        cards=[{"label": "test accuracy", "value": f"{toy['test_accuracy']:.3f}", "sub": "parity"}])]

    def summary(self, results: dict[str, Any]) -> str:
        parts = []
        if isinstance(results.get("test_perplexity"), float):
            parts.append(f"test perplexity {results['test_perplexity']:.3f}")
        toy = results.get("toy") or {}
        if "bit_flip_consistency" in toy:
            parts.append(f"bit-flip consistency {toy['bit_flip_consistency']:.3f}")
        return ", ".join(parts) or "not evaluated"


LAB = ToyParityLab()
register_dataset()
