"""`sustainml submit | result | tasks | cancel`: a publisher's tasks, from submission to result.

``submit`` reads the problem from flags, a JSON file or a JSONL batch, publishes it through the
orchestrator client (or, with ``--embedded``, through a whole deployment in this process on the
in-memory transport) and can follow it live; ``render`` prints what comes back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from sustainml.cli.batch import read_batch, submit_batch
from sustainml.cli.common import err, fail, friendly_errors, out, read_text_file, settings_of
from sustainml.cli.render import print_result, wait_live
from sustainml.config import Settings
from sustainml.messages import MessageError, TaskId, UserInput, from_json_dict
from sustainml.orchestrator.client import Client


def _parse_extra(pairs: tuple[str, ...]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            fail(f"--extra {pair!r}: expected KEY=VALUE (VALUE may be JSON)")
        key, raw = pair.split("=", 1)
        try:
            extra[key] = json.loads(raw)
        except json.JSONDecodeError:
            extra[key] = raw
    return extra


def _user_input_from_flags(opts: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if opts["input"]:
        path = Path(opts["input"])
        try:
            body = json.loads(read_text_file(path, "--input"))
        except json.JSONDecodeError as exc:
            fail(f"--input {path}: not JSON ({exc})")
        if not isinstance(body, dict):
            fail(f"--input {path}: expected a JSON object shaped like the REST /user_input body")
    fields = {
        "description": "problem_short_description",
        "definition": "problem_definition",
        "modality": "modality",
        "region": "geo_location_region",
        "continent": "geo_location_continent",
        "min_samples": "minimum_samples",
        "max_samples": "maximum_samples",
        "previous_iteration": "previous_iteration",
    }
    for opt, field in fields.items():
        if opts.get(opt) is not None:
            body[field] = opts[opt]
    extra = dict(body.get("extra_data") or {})
    if opts.get("hardware"):
        extra["hardware_required"] = opts["hardware"]
    if opts.get("max_memory") is not None:
        extra["max_memory_footprint"] = opts["max_memory"]
    if opts.get("goal"):
        extra["goal"] = opts["goal"]
    if opts.get("num_outputs") is not None:
        extra["num_outputs"] = opts["num_outputs"]
    if opts.get("problem") is not None:
        extra["previous_problem_id"] = opts["problem"]
    extra.update(_parse_extra(opts.get("extra") or ()))
    body["extra_data"] = extra
    return body


def _to_user_input(body: dict[str, Any], where: str) -> UserInput:
    try:
        return from_json_dict(UserInput, body)
    except MessageError as exc:
        fail(f"{where}: {exc}")


@click.command()
@click.option("--description", "-d", help="Problem short description (free text).")
@click.option("--definition", help="Longer problem definition.")
@click.option("--modality", help="Input modality hint: image, video, text, audio, time-series, tabular...")
@click.option(
    "--hardware",
    help="Hardware as written: A100, 'NVIDIA H100 80GB HBM3', p4d.24xlarge, v4-8, '8 x H100' "
    "(default: chosen among devices for the deployment).",
)
@click.option(
    "--max-memory",
    type=int,
    help="Max memory footprint of the model, MB (0 = no limit; default: the hardware's).",
)
@click.option(
    "--region", help="Where it runs: country, city or cloud region such as us-east-1 (carbon intensity)."
)
@click.option("--continent", help="Continent, used when the region is unknown.")
@click.option("--goal", help="Force the ML goal instead of inferring it.")
@click.option("--min-samples", type=int, help="Fewest training samples you have (UserInput.minimum_samples).")
@click.option("--max-samples", type=int, help="Most training samples you have (UserInput.maximum_samples).")
@click.option("--num-outputs", type=int, help="Number of alternative proposals (automatic iterations).")
@click.option(
    "--previous-iteration",
    type=int,
    help="Iterate on this iteration of --problem (-1 = its latest); the input is inherited.",
)
@click.option(
    "--problem",
    type=int,
    help="Problem id to iterate on (alone: its latest iteration); flags given override the inherited input.",
)
@click.option(
    "--extra",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any extra_data key (VALUE parsed as JSON), e.g. num_devices=8 training_hours=72 "
    "pue_setting=hyperscale training_power_w=350 model_parameters=7e9 training_tokens=2e12 "
    "(docs/estimation.md lists them).",
)
@click.option(
    "--input",
    "input",
    type=click.Path(dir_okay=False),
    help="JSON file shaped like the REST /user_input body.",
)
@click.option(
    "--batch",
    type=click.Path(dir_okay=False),
    help="JSON Lines file, one task per line: a /user_input body, or a problem description. "
    "Submitted pipelined; a bad line is refused with its number and field, the others still go.",
)
@click.option(
    "--wait/--no-wait",
    default=None,
    help="Follow the task (with --batch: every task) live and print its result (always on with --embedded).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the complete result(s) as JSON (implies --wait)."
)
@click.option("--full", is_flag=True, help="With --wait: every value of the result whole, none cut.")
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds to wait for results.")
@click.option(
    "--embedded", is_flag=True, help="Run orchestrator and workers in this process; no broker needed."
)
@click.pass_context
def submit(ctx: click.Context, /, **opts: Any) -> None:
    """Submit an ML problem (flags, --input JSON) or many (--batch JSONL)."""
    settings = settings_of(ctx)
    batch = read_batch(Path(opts["batch"])) if opts["batch"] else None
    if batch is None:
        if opts["problem"] is not None and opts["previous_iteration"] is None:
            opts["previous_iteration"] = -1  # --problem P alone: iterate on P's latest iteration
        body = _user_input_from_flags(opts)
        iteration = bool(body.get("previous_iteration"))  # inherits the base's description
        if (
            not body.get("problem_short_description")
            and not body.get("problem_definition")
            and not opts["input"]
            and not iteration
        ):
            fail(
                'describe the problem: --description "..." (or --input task.json / --batch tasks.jsonl; '
                "an iteration, --problem P [--previous-iteration I], inherits its base's description)"
            )
        inputs = [_to_user_input(body, "--input" if opts["input"] else "flags")]
    if opts["embedded"] and opts["wait"] is False:
        # The pipeline lives in this process and stops with it: returning early would lose the task.
        fail("--embedded runs the pipeline inside this command, so it always waits: drop --no-wait")
    wait = bool(opts["wait"] or opts["as_json"] or opts["embedded"])
    with friendly_errors(embedded_hint=True), _client(settings, embedded=opts["embedded"]) as client:
        if batch is not None:
            if not submit_batch(client, batch, wait=wait, as_json=opts["as_json"], timeout=opts["timeout"]):
                ctx.exit(1)
            return
        task_id = client.submit(inputs[0], watch=wait)
        if not wait:
            p, i = task_id.problem_id, task_id.iteration_id
            out.print(f"submitted task {task_id}  (follow it: sustainml result {p} {i})", soft_wrap=True)
            return
        if opts["as_json"]:
            result = client.wait(task_id, opts["timeout"])
            click.echo(json.dumps(result.to_json(), ensure_ascii=False))
        else:
            result = wait_live(client, task_id, opts["timeout"])
            print_result(result, full=opts["full"])
        if result.state != "succeeded":
            ctx.exit(1)


@contextmanager
def _client(settings: Settings, *, embedded: bool) -> Iterator[Client]:
    if embedded:
        from sustainml.deployment import LocalDeployment, memory_transports

        with LocalDeployment(settings, memory_transports()) as dep:
            client = dep.client()
            yield client
        return
    client = Client(settings)
    try:
        yield client
    finally:
        client.close()


@click.command()
@click.argument("problem_id", type=int)
@click.argument("iteration_id", type=int, default=1)
@click.option(
    "--full", is_flag=True, help="Every value whole (the reasoning is otherwise cut at 600 characters)."
)
@click.option("--json", "as_json", is_flag=True, help="Complete result as JSON.")
@click.pass_context
def result(ctx: click.Context, problem_id: int, iteration_id: int, full: bool, as_json: bool) -> None:
    """Show the stored result of task PROBLEM_ID ITERATION_ID (default iteration 1)."""
    with friendly_errors(), Client(settings_of(ctx)) as client:
        res = client.result(_task_id(problem_id, iteration_id))
    if as_json:
        click.echo(json.dumps(res.to_json(), ensure_ascii=False))
    else:
        print_result(res, full=full)


def _task_id(p: int, i: int) -> TaskId:
    try:
        return TaskId(problem_id=p, iteration_id=i)
    except MessageError as exc:
        fail(str(exc))


@click.command()
@click.option("--state", type=click.Choice(["queued", "running", "succeeded", "failed", "cancelled"]))
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--wide", is_flag=True, help="Also the error, the note and when each task finished.")
@click.option("--json", "as_json", is_flag=True, help="The rows as JSON (with problem_short_description).")
@click.pass_context
def tasks(ctx: click.Context, state: str | None, limit: int, wide: bool, as_json: bool) -> None:
    """List tasks, newest first, with their descriptions."""
    with friendly_errors(), Client(settings_of(ctx)) as client:
        rows = client.list_tasks(state=state, limit=limit)
        for r in rows:
            if "problem_short_description" not in r:  # the list answer does not carry it: ask
                tid = r["task_id"]
                res = client.result(_task_id(tid["problem_id"], tid["iteration_id"]))
                ui = res.user_input
                r["problem_short_description"] = ui.problem_short_description if ui else ""
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    table = Table(
        title=f"tasks of namespace {settings_of(ctx).namespace}", title_justify="left", box=box.SIMPLE_HEAD
    )
    rows_out: list[list[str]] = []
    for r in rows:
        tid = r["task_id"]
        where = r["state"] in ("queued", "running", "failed")  # where it is, or where it failed
        cells = [
            f"{tid['problem_id']}.{tid['iteration_id']}",
            r["state"],
            (r["current_stage"] or "") if where or wide else "",
            (r["created_at"] or "") if wide else _short_time(r["created_at"]),
            r["problem_short_description"] or "",
        ]
        if wide:
            cells += [r["finished_at"] or "", r["error"] or "", r.get("note") or ""]
        rows_out.append(cells)
    show_stage = any(c[2] for c in rows_out)
    used = 1  # the table's edge
    for index, name in enumerate(("task", "state", "stage", "created")):
        if name == "stage" and not show_stage:
            continue
        width = max([len(name), *(len(c[index]) for c in rows_out)])
        table.add_column(name, no_wrap=True, min_width=width)
        used += width + 3  # cell padding and the gap to the next column
    if wide:
        table.add_column("description", overflow="fold")
    else:  # whatever is left of the terminal; a longer description ends in "…"
        table.add_column(
            "description", overflow="ellipsis", no_wrap=True, max_width=max(20, out.width - used - 3)
        )
    if wide:
        for col in ("finished", "error", "note"):
            table.add_column(col, overflow="fold")
    for cells in rows_out:
        table.add_row(*(Text(c) for i, c in enumerate(cells) if show_stage or i != 2))
    (Console(width=max(out.width, 200), soft_wrap=True) if wide else out).print(table)


def _short_time(iso: str | None) -> str:
    """``2026-12-07T10:42:49.9+00:00`` -> ``12-07 10:42:49`` (UTC, as stored)."""
    if not iso:
        return ""
    return iso[5:10] + " " + iso[11:19]


@click.command()
@click.argument("problem_id", type=int, required=False)
@click.argument("iteration_id", type=int, required=False)
@click.pass_context
def cancel(ctx: click.Context, problem_id: int | None, iteration_id: int | None) -> None:
    """Cancel a task (default: the latest unfinished one). A task that has already finished is left
    as it ended: the command says so and exits with 1."""
    if (problem_id is None) != (iteration_id is None):
        fail("give both PROBLEM_ID and ITERATION_ID, or neither (the latest unfinished task)")
    tid = _task_id(problem_id, iteration_id) if problem_id is not None and iteration_id is not None else None
    with friendly_errors(), Client(settings_of(ctx)) as client:
        if tid is not None:
            before = client.result(tid)
            if before.done:  # a finished task stays as it ended: say so, send nothing
                err.print(
                    f"task {tid} already {before.state}: nothing to cancel", highlight=False, soft_wrap=True
                )
                ctx.exit(1)
        done = client.cancel(tid)
        after = client.result(done) if done else None
    if done is None or after is None:
        out.print("no unfinished task to cancel", soft_wrap=True)
    elif after.state != "cancelled":  # it finished between the check and the cancel
        err.print(
            f"task {done} {after.state} before the cancel arrived: nothing cancelled",
            highlight=False,
            soft_wrap=True,
        )
        ctx.exit(1)
    else:
        out.print(f"cancelled task {done}", highlight=False, soft_wrap=True)
