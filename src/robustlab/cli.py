"""The ``robustlab`` command line.

Every command takes ``--debug`` (show tracebacks) and ``--quiet`` (no progress bars). Bad input
prints one line on stderr and exits with code 2.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from robustlab import __version__
from robustlab.core.errors import RobustlabError
from robustlab.core.progress import set_quiet, setup_logging

try:  # typer >= 0.20 vendors its own copy of click
    from typer._click import exceptions as _typer_click
except ImportError:  # pragma: no cover - older typer uses click itself
    _typer_click = click.exceptions

_ARGS: list[str] = []  # the arguments of this invocation (for relaunching under torchrun)
_USAGE_ERRORS = (click.exceptions.UsageError, _typer_click.UsageError)
_ABORTS = (click.exceptions.Abort, getattr(typer, "Abort", click.exceptions.Abort))

app = typer.Typer(
    name="robustlab",
    help="Train, attack, defend and explain deep networks — one command to a report.",
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

Debug = Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars (also off without a terminal).")]


def _csv_floats(text: str | None, what: str) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [_number(t) for t in text.split(",") if t.strip()]
    except (ValueError, ZeroDivisionError):
        raise RobustlabError(f"{what} expects comma-separated numbers like 0.03,8/255, got {text!r}") from None
    if any(v != v or v in (float("inf"), float("-inf")) for v in values):
        raise RobustlabError(f"{what} expects finite numbers, got {text!r}")
    return values


def _number(token: str) -> float:
    token = token.strip()
    if "/" in token:
        num, den = token.split("/", 1)
        return float(num) / float(den)
    return float(token)


def _csv(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
    debug: Debug = False,
    quiet: Quiet = False,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads for torch (default: all cores; 1 on a busy shared machine).")
    ] = None,
) -> None:
    setup_logging(logging.DEBUG if debug else logging.INFO)
    import os

    threads = threads or (int(os.environ["ROBUSTLAB_THREADS"]) if os.environ.get("ROBUSTLAB_THREADS") else None)
    if threads is not None:
        if threads < 1:
            raise RobustlabError(f"--threads must be >= 1, got {threads}")
        import torch

        torch.set_num_threads(threads)
    if quiet:
        set_quiet(True)
    if version:
        typer.echo(f"robustlab {__version__}")
        raise typer.Exit()


def _common(quiet: bool) -> None:
    setup_logging()
    if quiet:
        set_quiet(True)


# ---------------------------------------------------------------------------------------------
# listings
# ---------------------------------------------------------------------------------------------
@app.command()
def datasets(
    data_root: Annotated[
        Path | None, typer.Option(help="Where datasets live (default $ROBUSTLAB_DATA or ./data).")
    ] = None,
    debug: Debug = False,
) -> None:
    """List datasets of every kind (image, tokens, paired): shape, sizes, and whether each is available offline now."""
    from robustlab.data import catalog
    from robustlab.labs import LABS

    LABS.names()  # plug-in labs may bring datasets of their own
    typer.echo(f"{'name':<18} {'kind':<7} {'shape':<28} {'train':>7} {'test':>7}  {'offline':<8} description")
    for row in catalog(data_root):
        avail = "yes" if row["available"] else "no"
        typer.echo(
            f"{row['name']:<18} {row['kind']:<7} {row['shape']:<28} {row['train']:>7} {row['test']:>7}  "
            f"{avail:<8} {row['description']}"
        )


@app.command()
def labs(
    name: Annotated[str | None, typer.Argument(help="Show only this lab.")] = None,
    debug: Debug = False,
) -> None:
    """List the labs (experiment families, built in or from plug-ins) with their config schema and defaults."""
    from robustlab.labs import LABS, get_lab, schema_lines

    names = [LABS.key(name)] if name else LABS.names()
    for lab_name in names:
        lab = get_lab(lab_name)
        typer.echo(f"{lab.name:<15} {lab.description}")
        for line in schema_lines(lab.config_model):
            typer.echo(f"{'':<4}{line}")


@app.command()
def models(debug: Debug = False) -> None:
    """List model architectures and their options."""
    from robustlab.models import list_models
    from robustlab.models.registry import COMMON_OPTIONS

    for info in list_models():
        opts = {**info.options, **COMMON_OPTIONS}
        typer.echo(f"{info.name:<15} {info.description}")
        typer.echo(f"{'':<15} options: " + ", ".join(f"{k}={v}" for k, v in opts.items()))


@app.command()
def attacks(debug: Debug = False) -> None:
    """List attacks with their parameters and defaults."""
    from robustlab.attacks import list_attacks

    for info in list_attacks():
        typer.echo(f"{info.name:<15} {info.description}")
        typer.echo(f"{'':<15} " + ", ".join(f"{k}={v}" for k, v in info.params.items()))


@app.command()
def defenses(debug: Debug = False) -> None:
    """List training defenses with their parameters and defaults."""
    from robustlab.defenses import DEFENSES, defense_params

    for name, cls in DEFENSES.items():
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        typer.echo(f"{name:<12} {doc}")
        params = defense_params(name)
        if params:
            typer.echo(f"{'':<12} " + ", ".join(f"{k}={v}" for k, v in params.items()))


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------
def _build_config(config: Path | None, sets: list[str] | None, flags: dict[str, Any]):
    from robustlab.config import ExperimentConfig, load_yaml, parse_config, parse_override, set_dotted

    raw: dict[str, Any] = load_yaml(config) if config else {}
    for dotted, value in flags.items():
        if value is not None:
            set_dotted(raw, dotted, value)
    for item in sets or []:
        key, value = parse_override(item)
        set_dotted(raw, key, value)
    cfg: ExperimentConfig = parse_config(raw, where=str(config) if config else "config")
    if "name" not in raw:
        parts = [cfg.data.dataset]
        model = getattr(cfg, "model", None)
        if getattr(model, "name", None):
            parts.append(model.name)
        defense = getattr(cfg, "defense", None)
        if getattr(defense, "name", "none") != "none":
            parts.append(defense.name)
        cfg = cfg.model_copy(update={"name": "-".join(parts)})
    return cfg


@app.command()
def train(
    task: Annotated[str | None, typer.Option(help="The lab (see `robustlab labs`); default classification.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset name (see `robustlab datasets`).")] = None,
    model: Annotated[str | None, typer.Option(help="Model name (see `robustlab models`).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (default runs/<name>).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing run in --out.")] = False,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Experiment YAML.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override any config key: train.lr=0.01")] = None,
    defense: Annotated[str | None, typer.Option(help="Training defense (see `robustlab defenses`).")] = None,
    eps: Annotated[str | None, typer.Option(help="Defense/evaluation budget, e.g. 0.1 or 8/255.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Training batch size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
    optimizer: Annotated[str | None, typer.Option(help="sgd, adam or adamw.")] = None,
    schedule: Annotated[str | None, typer.Option(help="none, step, cosine, plateau, warmup_cosine, ...")] = None,
    augmentation: Annotated[str | None, typer.Option(help="none, cifar or digits.")] = None,
    label_smoothing: Annotated[float | None, typer.Option(help="Label smoothing epsilon.")] = None,
    patience: Annotated[int | None, typer.Option(help="Early-stopping patience in epochs.")] = None,
    train_subset: Annotated[int | None, typer.Option(help="Use this many training images.")] = None,
    val_fraction: Annotated[float | None, typer.Option(help="Fraction of train held out for validation.")] = None,
    data_root: Annotated[str | None, typer.Option(help="Dataset folder.")] = None,
    download: Annotated[bool | None, typer.Option("--download", help="Allow dataset downloads.")] = None,
    init_from: Annotated[str | None, typer.Option(help="Checkpoint/weights to start from (fine-tuning).")] = None,
    freeze_backbone: Annotated[bool | None, typer.Option("--freeze-backbone", help="Train only the head.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N.")] = None,
    amp: Annotated[str | None, typer.Option(help="Mixed precision: none, bf16, fp16.")] = None,
    evaluate: Annotated[bool, typer.Option("--evaluate", help="Run the robustness evaluation afterwards.")] = False,
    smoke: Annotated[bool, typer.Option("--smoke", help="Fabricated data of the same shape; seconds.")] = False,
    nproc: Annotated[int, typer.Option(help="Processes: relaunch under torchrun with N ranks (DDP).")] = 1,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Train a model into a run folder (config.yaml, metrics.jsonl, checkpoints/, results.json, report.html)."""
    from robustlab.core import distributed as D
    from robustlab.experiment import train_experiment
    from robustlab.pipeline import evaluate_run, report_run

    _common(quiet)
    _maybe_relaunch(nproc)
    eps_values = _csv_floats(eps, "--eps")
    flags: dict[str, Any] = {
        "task": task, "data.dataset": dataset, "model.name": model, "train.epochs": epochs, "seed": seed,
        "defense.name": defense, "data.batch_size": batch_size, "train.lr": lr, "train.optimizer": optimizer,
        "train.schedule": schedule, "data.augmentation": augmentation, "train.label_smoothing": label_smoothing,
        "train.patience": patience, "data.train_subset": train_subset, "data.val_fraction": val_fraction,
        "data.root": data_root, "data.download": download, "train.init_from": init_from,
        "train.freeze_backbone": freeze_backbone, "device": device, "train.amp": amp,
    }
    if eps_values:  # the robustness budget of classification runs
        flags["evaluate.eps"] = eps_values
        if defense and defense != "none":
            from robustlab.defenses import DEFENSES, defense_params

            if defense in DEFENSES and "eps" in defense_params(defense):
                flags["defense.params.eps"] = eps_values[0]
    cfg = _build_config(config, set_, flags)
    from robustlab.config import lab_of

    lab_of(cfg).check(cfg)
    run_path = out or Path("runs") / cfg.name
    run = train_experiment(cfg, run_path, resume=resume, overwrite=overwrite, smoke=smoke)
    if not D.is_main():
        return
    if evaluate:
        evaluate_run(run.path, device=cfg.device)
    report = report_run(run.path)
    from robustlab.pipeline import summary_line

    typer.echo(f"{run.path}: {summary_line(run.path)}; report {report}")


def _maybe_relaunch(nproc: int) -> None:
    """With ``--nproc N`` (N > 1) outside torchrun, rerun this very command under torchrun."""
    import os
    import subprocess

    if nproc < 1:
        raise RobustlabError(f"--nproc must be >= 1, got {nproc}")
    if nproc == 1 or "WORLD_SIZE" in os.environ:
        return
    from robustlab.core.distributed import torchrun_command

    argv, skip = [], False
    for a in _ARGS:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        argv.append(a)
    raise typer.Exit(subprocess.call(torchrun_command(nproc, argv)))


# ---------------------------------------------------------------------------------------------
# evaluate / explain / report / compare
# ---------------------------------------------------------------------------------------------
@app.command("evaluate")
def evaluate_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    attacks: Annotated[str | None, typer.Option("--attacks", help="Comma-separated, e.g. fgsm,pgd,apgd-ce.")] = None,
    eps: Annotated[str | None, typer.Option(help="Comma-separated budgets, e.g. 0.03,8/255,0.1.")] = None,
    norm: Annotated[str | None, typer.Option(help="linf or l2.")] = None,
    steps: Annotated[int | None, typer.Option(help="Iterations of iterative attacks.")] = None,
    n_samples: Annotated[int | None, typer.Option(help="Evaluate on the first N test images.")] = None,
    noise: Annotated[str | None, typer.Option(help="Gaussian-noise sigmas, e.g. 0.05,0.1.")] = None,
    no_early_exit: Annotated[bool, typer.Option("--no-early-exit", help="Attack every point fully.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda.")] = "auto",
    nproc: Annotated[int, typer.Option(help="Processes: relaunch under torchrun with N ranks.")] = 1,
    checkpoint: Annotated[str, typer.Option(help="Which weights: best or last.")] = "best",
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Robustness audit of a trained run: clean, noise, attacks, eps sweep, worst case, sanity flags.

    Under torchrun (or with ``--nproc N``) the ranks share the batches; the numbers and the per-sample
    outcomes equal a one-process evaluation's."""
    from robustlab.core import distributed as D
    from robustlab.core.runs import RunDir
    from robustlab.pipeline import evaluate_run, report_run

    _common(quiet)
    overrides: dict[str, Any] = {}
    if attacks is not None:
        overrides["attacks"] = _csv(attacks)
    if eps is not None:
        overrides["eps"] = _csv_floats(eps, "--eps")
    if noise is not None:
        overrides["noise_sigma"] = _csv_floats(noise, "--noise")
    for key, value in (("norm", norm), ("steps", steps), ("n_samples", n_samples)):
        if value is not None:
            overrides[key] = value
    if no_early_exit:
        overrides["early_exit"] = False
    RunDir.open(run_dir)  # a clear one-line error before any relaunch
    from robustlab.pipeline import check_evaluate_options

    check_evaluate_options(run_dir, overrides)
    if checkpoint not in ("best", "last"):
        raise RobustlabError(f"--checkpoint must be best or last, got {checkpoint!r}")
    _maybe_relaunch(nproc)
    doc = evaluate_run(run_dir, overrides, device=device, checkpoint=checkpoint)
    if not D.is_main():
        return
    report_run(run_dir)
    from robustlab.pipeline import summary_line

    typer.echo(f"{run_dir}: {summary_line(run_dir)}")
    flags = doc.get("flags", []) or []
    if flags:
        typer.echo(f"sanity flags: {len(flags)} — " + ", ".join(f["code"] for f in flags))


@app.command()
def explain(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    other: Annotated[Path | None, typer.Option(help="A second run to show side by side (before/after).")] = None,
    n_images: Annotated[int, typer.Option(help="Images in the Grad-CAM and adversarial grids.")] = 8,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda.")] = "auto",
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Grad-CAM (clean/adversarial), UMAP of features and an adversarial grid into the run's figures/."""
    from robustlab.pipeline import explain_run_dir, report_run

    _common(quiet)
    if n_images < 1:
        raise RobustlabError(f"--n-images must be >= 1, got {n_images}")
    figs = explain_run_dir(run_dir, other=other, n_images=n_images, device=device)
    report_run(run_dir)
    for name, path in figs.items():
        typer.echo(f"{name}: {Path(run_dir) / path}")


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    debug: Debug = False,
) -> None:
    """(Re)write the run's self-contained report.html."""
    from robustlab.core.runs import RunDir
    from robustlab.pipeline import report_run

    RunDir.open(run_dir)
    typer.echo(str(report_run(run_dir)))


@app.command()
def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="Two or more run folders.")],
    out: Annotated[Path, typer.Option(help="Where to write it: .html (report) or .md (Markdown tables).")] = Path(
        "runs/compare.html"),
    title: Annotated[str | None, typer.Option(help="Report title.")] = None,
    debug: Debug = False,
) -> None:
    """One report across several runs (tables and curves side by side)."""
    from robustlab.pipeline import compare_runs

    typer.echo(str(compare_runs(list(run_dirs), out, title=title)))


# ---------------------------------------------------------------------------------------------
# recipes and the demo
# ---------------------------------------------------------------------------------------------
@app.command()
def run(
    recipe: Annotated[Path, typer.Argument(help="A recipe YAML (see recipes/).")],
    out: Annotated[Path | None, typer.Option(help="Output folder (default runs/<recipe name>).")] = None,
    smoke: Annotated[bool, typer.Option("--smoke", help="Fabricated data of the same shape; seconds.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue; finished runs are skipped.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing output.")] = False,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda.")] = None,
    nproc: Annotated[int, typer.Option(
        help="Processes: relaunch under torchrun with N ranks; the folds of cross-validated runs are dealt "
             "to them (each fold in one process, e.g. `--threads 1 --nproc 2` on two cores).")] = 1,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Run a whole recipe: train → evaluate → explain → report, then compare."""
    from robustlab.core import distributed as D
    from robustlab.recipe import load_recipe, run_recipe

    _common(quiet)
    rec = load_recipe(recipe)  # a bad recipe fails before torchrun starts
    _maybe_relaunch(nproc)
    D.init_job_sharing()
    dest = out or Path("runs") / (rec.name + ("-smoke" if smoke else ""))
    summary = run_recipe(rec, dest, smoke=smoke, resume=resume, overwrite=overwrite, device=device)
    if D.is_main():
        _print_summary(summary)


def _print_summary(summary: dict[str, Any]) -> None:
    from robustlab.labs import get_lab

    for name, res in summary.items():
        if name in ("compare", "compare_markdown"):
            typer.echo(f"{'compare report' if name == 'compare' else 'compare tables'}: {res}")
            continue
        typer.echo(f"{name}: " + get_lab(str(res.get("task", "classification"))).summary(res))


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/demo"),
    dataset: Annotated[str, typer.Option(help="fashion-mnist (default) or digits.")] = "fashion-mnist",
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted demo.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing demo folder.")] = False,
    smoke: Annotated[bool, typer.Option("--smoke", help="Fabricated data; seconds.")] = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """The main job: train small_cnn, adversarially fine-tune it, audit both, and write the reports."""
    from robustlab.recipe import demo_recipe, run_recipe

    _common(quiet)
    summary = run_recipe(demo_recipe(dataset), out, smoke=smoke, resume=resume, overwrite=overwrite)
    _print_summary(summary)
    typer.echo(f"reports: {out}/*/report.html and {out}/compare.html")


# ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI; bad input → one line on stderr and exit code 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    _ARGS[:] = args
    debug = "--debug" in args
    try:
        code = app(args=args, prog_name="robustlab", standalone_mode=False)
    except _USAGE_ERRORS as e:
        if debug:
            raise
        if type(e).__name__ == "NoArgsIsHelpError":  # bare `robustlab`: the help was printed
            sys.exit(0)
        msg = e.format_message().replace("\n", " ")
        hint = f" (see 'robustlab {e.ctx.info_name} --help')" if e.ctx and e.ctx.info_name != "robustlab" else ""
        typer.echo(f"robustlab: error: {msg}{hint}", err=True)
        sys.exit(2)
    except _ABORTS:
        typer.echo("robustlab: interrupted", err=True)
        sys.exit(130)
    except (RobustlabError, FileNotFoundError, PermissionError) as e:
        if debug:
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        typer.echo(f"robustlab: error: {msg}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("robustlab: interrupted", err=True)
        sys.exit(130)
    except Exception as e:  # a bug: one line unless --debug
        if debug:
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        typer.echo(f"robustlab: internal error: {type(e).__name__}: {first} (rerun with --debug for the traceback)",
                   err=True)
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)
