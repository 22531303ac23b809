"""`sustainml eval ...`: the offline components measured on their shipped data (figures printed,
never asserted)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from sustainml.cli.common import err, fail


@click.group(name="eval")
def eval_group() -> None:
    """Evaluate the offline components on their shipped data (figures, not tests)."""


@eval_group.command(name="encoder")
@click.option("--folds", type=int, default=5, show_default=True, help="k of the k-fold cross-validation.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--descriptions",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Instead: encode each description of this JSON-lines file ({text, goal?, modality?}) and "
    "print the answer, its deciding words and the extracted requirements.",
)
@click.option("--json", "as_json", is_flag=True)
def eval_encoder(folds: int, seed: int, descriptions: Path | None, as_json: bool) -> None:
    """Goal and modality accuracy of the task encoder: k-fold cross-validation over its corpus, and
    the held-out set of descriptions written in other people's styles (never trained on), apart;
    with the median time per description."""
    from sustainml.workers.logic.encoder.evaluate import (
        check_descriptions,
        evaluate,
        evaluate_held_out,
        render_checks,
    )

    if descriptions is not None:
        try:
            checks = check_descriptions(descriptions)
        except ValueError as exc:
            fail(str(exc))
        click.echo(json.dumps([c.to_json() for c in checks], indent=2) if as_json else render_checks(checks))
        return
    report = evaluate(folds=folds, seed=seed)
    held_out = evaluate_held_out()
    if as_json:
        both = {"cross_validation": report.to_json(), "held_out": held_out.to_json()}
        click.echo(json.dumps(both, indent=2))
    else:
        click.echo(report.render() + "\n\n" + held_out.render())


@eval_group.command(name="requirements")
@click.option("--json", "as_json", is_flag=True)
def eval_requirements(as_json: bool) -> None:
    """Precision and recall of the application-requirements extractor on its shipped cases: the
    development table (written with the rules) and the blind table (written before them), apart."""
    from sustainml.workers.logic.requirements.evaluate import BLIND, DEVELOPMENT, evaluate

    reports = [evaluate(DEVELOPMENT), evaluate(BLIND)]
    if as_json:
        click.echo(json.dumps({r.title: r.to_json() for r in reports}, indent=2))
    else:
        click.echo("\n\n".join(r.render() for r in reports))


@eval_group.command(name="latency")
@click.option("--fresh", is_flag=True, help="Re-measure everything (the CPU too), no cached runs.")
@click.option("--budget", type=float, default=None, help="Seconds to spend measuring.")
@click.option(
    "--save-calibration",
    is_flag=True,
    help="Write the fitted local-cpu factors for HW_RESOURCES to use (default: report only).",
)
@click.option("--json", "as_json", is_flag=True)
def eval_latency(fresh: bool, budget: float | None, save_calibration: bool, as_json: bool) -> None:
    """Estimated (roofline) vs measured (onnxruntime) latency of every catalogue model that fits
    on this CPU; the local-cpu calibration is fitted on half of them and scored on the other half.
    It changes what HW_RESOURCES estimates only with --save-calibration."""
    from sustainml.estimate.latency_eval import evaluate

    def progress(line: str) -> None:
        err.print(line, highlight=False, soft_wrap=True)

    kwargs: dict[str, Any] = {"use_cache": not fresh, "progress": progress, "save": save_calibration}
    if budget is not None:
        kwargs["budget_s"] = budget
    report = evaluate(**kwargs)
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else report.render())


@eval_group.command(name="logic")
@click.option("--limit", type=int, default=None, help="Only the first N descriptions.")
@click.option("--json", "as_json", is_flag=True)
def eval_logic(limit: int | None, as_json: bool) -> None:
    """The six shipped stage callbacks, in one process without messaging, on the encoder's held-out
    descriptions: how many get an answer, no feasible model or a failure, and the time per stage."""
    from sustainml.bench import logic

    report = logic.evaluate(limit=limit)
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else report.render())


@eval_group.command(name="published")
@click.option(
    "--part",
    "parts",
    multiple=True,
    help="Only these parts (repeatable): training, calibration, forecast, parameters, mlperf, serving.",
)
@click.option("--json", "as_json", is_flag=True)
def eval_published(parts: tuple[str, ...], as_json: bool) -> None:
    """Estimates against published figures: training footprints, the forecast MFU's calibration
    runs, forecasts, parameter counts, MLPerf inference latency and serving energy, each row with
    its source."""
    from sustainml import validation

    try:
        tables = validation.run_all(list(parts) or None)
    except KeyError as exc:
        fail(str(exc.args[0]))
    if as_json:
        click.echo(json.dumps([t.to_json() for t in tables], indent=2))
    else:
        click.echo("\n\n".join(t.render() for t in tables))
