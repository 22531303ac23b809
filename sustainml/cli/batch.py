"""`sustainml submit --batch FILE`: many problems from one file, submitted through
``Client.submit_many`` (pipelined requests, not one round trip each).

Each line is a JSON object of UserInput fields (the REST ``/user_input`` body) or a problem
description (plain text, or a JSON string); blank lines are skipped. A line that cannot be read,
or that the orchestrator refuses, is reported with its number and the field; every other line is
still submitted, and the closing summary counts both. With ``--wait`` every task is followed to
its end and the results come back in input order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sustainml.cli.common import err, fail, out, read_text_file
from sustainml.cli.render import summary_row
from sustainml.messages import MessageError, TaskId, UserInput, from_json_dict
from sustainml.orchestrator.client import Client, StageEvent, SubmissionsUnanswered
from sustainml.orchestrator.service import SubmitRefused
from sustainml.topology import PIPELINE

# A batch is read whole into memory and submitted in one go: bound it so that a wrong file
# (a log, a dataset) fails at once instead of exhausting memory or flooding the broker.
MAX_BATCH_BYTES = 64 * 1024 * 1024
MAX_BATCH_TASKS = 100_000
# Inputs per submit_many call: the progress bar moves after each (a call keeps its own window of
# requests in flight, so a chunk costs one round trip of waiting at its end, no more).
PROGRESS_CHUNK = 1024
_JSON_STARTS = ("{", "[", '"')


@dataclass
class Batch:
    """The lines of a batch file: those read into a UserInput, those refused (line -> why), and
    the task each submitted line created."""

    path: Path
    inputs: dict[int, UserInput] = field(default_factory=dict)
    refused: dict[int, str] = field(default_factory=dict)
    submitted: dict[int, TaskId] = field(default_factory=dict)

    def refuse(self, line: int, error: str) -> None:
        self.refused[line] = error
        err.print(
            f"[bold red]refused:[/] --batch {self.path}:{line}: {error}", highlight=False, soft_wrap=True
        )

    def summary(self) -> str:
        text = f"submitted {len(self.submitted)} task(s) from {self.path}"
        if self.refused:
            lines = ", ".join(str(n) for n in sorted(self.refused)[:20])
            more = ", ..." if len(self.refused) > 20 else ""
            text += f"; {len(self.refused)} line(s) refused ({lines}{more})"
        return text


def read_batch(path: Path) -> Batch:
    """Every non-blank line of ``path``, read or refused. Only a file that cannot be a batch at all
    (unreadable, too large, no lines) stops the command."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        fail(f"--batch {path}: {exc.strerror or exc}")
    if size > MAX_BATCH_BYTES:
        fail(f"--batch {path}: {size} bytes, more than the {MAX_BATCH_BYTES} accepted; split the file")
    lines = read_text_file(path, "--batch").splitlines()
    if sum(1 for line in lines if line.strip()) > MAX_BATCH_TASKS:
        fail(f"--batch {path}: more than {MAX_BATCH_TASKS} tasks; split the file")
    batch = Batch(path)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            batch.inputs[number] = parse_line(line)
        except (MessageError, ValueError) as exc:
            batch.refuse(number, str(exc))
    if not batch.inputs and not batch.refused:
        fail(f"--batch {path}: no tasks in the file")
    return batch


def parse_line(line: str) -> UserInput:
    """One line: a JSON object of UserInput fields, a JSON string or plain text (the problem
    description). ``MessageError`` names the field; ``ValueError`` says what the line is not."""
    text = line.strip()
    if not text.startswith(_JSON_STARTS):
        return UserInput(problem_short_description=text)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg}, column {exc.colno})") from None
    if isinstance(value, str):
        if not value.strip():
            raise MessageError("UserInput.problem_short_description", "empty: describe the problem")
        return UserInput(problem_short_description=value)
    if not isinstance(value, dict):
        raise ValueError(
            f"expected a JSON object of UserInput fields or a description, got {type(value).__name__}"
        )
    return from_json_dict(UserInput, value)


def submit_batch(client: Client, batch: Batch, *, wait: bool, as_json: bool, timeout: float) -> bool:
    """Submit every line read; with ``wait`` follow them all and print their results. True when
    no line was refused and every followed task succeeded."""
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    ) as progress:
        bar = progress.add_task("submitted", total=len(batch.inputs))
        _submit_all(client, batch, watch=wait, advance=lambda n: progress.advance(bar, n))
        if not wait:
            progress.stop()
            _print_submitted(batch)
            return not batch.refused
        ids = list(batch.submitted.values())
        finished = progress.add_task("finished", total=len(ids))

        def on_progress(ev: StageEvent) -> None:
            if ev.failed or ev.node == PIPELINE[-1].node:
                progress.update(finished, completed=min(len(ids), progress.tasks[finished].completed + 1))

        results = client.wait_many(ids, timeout + len(ids) * 0.5, on_progress)
        progress.update(finished, completed=len(ids))
    rows = sorted([*((n, tid) for n, tid in batch.submitted.items()), *((n, None) for n in batch.refused)])
    if as_json:
        for number, tid in rows:  # input order; a refused line says why where its result would be
            answer = (
                results[tid].to_json()
                if tid is not None
                else {"line": number, "error": batch.refused[number]}
            )
            click.echo(json.dumps(answer, ensure_ascii=False))
    else:
        table = Table(title=f"{len(ids)} tasks")
        for col in (
            "task",
            "state",
            "goal",
            "model",
            "hardware",
            "latency (s)",
            "energy (Wh)",
            "carbon (kgCO2e)",
        ):
            table.add_column(col)
        for number, tid in sorted(batch.submitted.items()):
            table.add_row(str(number), *summary_row(results[tid]))
        out.print(table)
    succeeded = sum(results[tid].state == "succeeded" for tid in ids)
    err.print(f"{batch.summary()}; {succeeded} succeeded", highlight=False, soft_wrap=True)
    return not batch.refused and succeeded == len(ids)


def _submit_all(client: Client, batch: Batch, *, watch: bool, advance: Callable[[int], None]) -> None:
    """submit_many, a chunk at a time; the orchestrator's refusals join the batch's. Submissions
    left unanswered stop the command after saying which lines did get their task."""
    numbers = sorted(batch.inputs)
    for start in range(0, len(numbers), PROGRESS_CHUNK):
        chunk = numbers[start : start + PROGRESS_CHUNK]
        try:
            outcomes = client.submit_many([batch.inputs[n] for n in chunk], watch=watch)
        except SubmissionsUnanswered as exc:
            _record(batch, chunk, exc.outcomes)
            _print_submitted(batch)
            fail(str(exc))
        _record(batch, chunk, outcomes)
        advance(len(chunk))


def _record(batch: Batch, numbers: list[int], outcomes: Sequence[TaskId | SubmitRefused | None]) -> None:
    for number, outcome in zip(numbers, outcomes, strict=True):
        if isinstance(outcome, TaskId):
            batch.submitted[number] = outcome
        elif isinstance(outcome, SubmitRefused):
            batch.refuse(number, outcome.error)


def _print_submitted(batch: Batch) -> None:
    for number, tid in sorted(batch.submitted.items()):
        out.print(f"line {number}: task {tid}", highlight=False, soft_wrap=True)
    err.print(batch.summary(), highlight=False, soft_wrap=True)
