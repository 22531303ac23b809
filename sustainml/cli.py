"""`sustainml`: the publisher and operator command line.

Every command that needs the broker turns "no broker" into one line that says how to fix it;
``submit --embedded`` runs the orchestrator and all six workers in this process on the in-memory
transport, so it works on a machine with no broker at all.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

import click
from rich import box
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from sustainml import __version__
from sustainml.cli_bench import bench
from sustainml.cli_dlq import dlq
from sustainml.cli_health import health
from sustainml.config import ConfigError, Settings
from sustainml.display import clarification, config_outcome, figures_are_placeholders, task_alerts
from sustainml.messages import UNITS, MessageError, TaskId, UserInput, from_json_dict, to_json_dict
from sustainml.orchestrator.client import Client, OrchestratorError, StageEvent
from sustainml.orchestrator.protocol import TaskResult
from sustainml.topology import PIPELINE, resolve_stage
from sustainml.transport.base import BrokerUnavailable, TransportError

if TYPE_CHECKING:
    from sustainml.orchestrator.core import Orchestrator

err = Console(stderr=True)
out = Console()


class CliError(click.ClickException):
    """A one-line, actionable error (no traceback)."""

    def show(self, file: Any = None) -> None:
        # soft_wrap: the terminal wraps long lines; a pipe or a log gets each message on one line.
        err.print(f"[bold red]error:[/] {self.format_message()}", highlight=False, soft_wrap=True)


def _fail(msg: str) -> NoReturn:
    raise CliError(msg)


@contextmanager
def _friendly_errors(*, embedded_hint: bool = False) -> Iterator[None]:
    """Turn the errors a user can fix into one line each."""
    try:
        yield
    except BrokerUnavailable as exc:
        hint = "\n       or run without a broker: add --embedded" if embedded_hint else ""
        _fail(f"{exc}{hint}")
    except (OrchestratorError, MessageError, ConfigError, TransportError) as exc:
        _fail(str(exc))
    except TimeoutError as exc:
        _fail(str(exc))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sustainml")
@click.option(
    "--broker", envvar="SUSTAINML_BROKER_URL", help="AMQP URL (default amqp://guest:guest@127.0.0.1:5672/)."
)
@click.option(
    "--namespace", envvar="SUSTAINML_NAMESPACE", help="Exchange/queue name prefix (default sustainml)."
)
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.pass_context
def cli(ctx: click.Context, broker: str | None, namespace: str | None, verbose: int) -> None:
    """Propose an ML model, its hardware and its footprint from a problem description."""
    if broker and ctx.get_parameter_source("broker") == click.core.ParameterSource.COMMANDLINE:
        _refuse_password_on_command_line(broker)
    try:
        settings = Settings.from_env().with_overrides(broker_url=broker, namespace=namespace)
        settings.validate()
    except ConfigError as exc:
        _fail(str(exc))
    level = {0: settings.log_level, 1: "INFO"}.get(verbose, "DEBUG")
    logging.basicConfig(
        level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr
    )
    ctx.obj = settings


def _refuse_password_on_command_line(url: str) -> None:
    """A password in ``--broker`` is readable by every user of the machine (``ps``, shell history):
    it must come from the environment. RabbitMQ's well-known development account (guest:guest,
    loopback only) reveals nothing and stays allowed."""
    for one in url.split(","):
        parsed = urlsplit(one.strip())
        if parsed.password and (parsed.username, parsed.password) != ("guest", "guest"):
            _fail(
                "--broker: a password on the command line is visible to every user of this machine "
                "(ps, shell history); put the URL in SUSTAINML_BROKER_URL (environment or an env file "
                "readable only by you) and leave --broker out"
            )


def _settings(ctx: click.Context) -> Settings:
    settings = ctx.find_root().obj
    assert isinstance(settings, Settings)
    return settings


# --------------------------------------------------------------------------------------------
# submit
# --------------------------------------------------------------------------------------------
def _parse_extra(pairs: tuple[str, ...]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            _fail(f"--extra {pair!r}: expected KEY=VALUE (VALUE may be JSON)")
        key, raw = pair.split("=", 1)
        try:
            extra[key] = json.loads(raw)
        except json.JSONDecodeError:
            extra[key] = raw
    return extra


def _read_text(path: Path, flag: str) -> str:
    """A UTF-8 file's text, or one line naming the flag, the file and what is wrong with it."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start]
        _fail(f"{flag} {path}: not UTF-8 text (byte 0x{bad:02x} at offset {exc.start}); save it as UTF-8")
    except OSError as exc:
        _fail(f"{flag} {path}: {exc.strerror or exc}")


def _user_input_from_flags(opts: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if opts["input"]:
        path = Path(opts["input"])
        try:
            body = json.loads(_read_text(path, "--input"))
        except json.JSONDecodeError as exc:
            _fail(f"--input {path}: not JSON ({exc})")
        if not isinstance(body, dict):
            _fail(f"--input {path}: expected a JSON object shaped like the REST /user_input body")
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
        _fail(f"{where}: {exc}")


@cli.command()
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
@click.option("--batch", type=click.Path(dir_okay=False), help="JSONL file: one /user_input body per line.")
@click.option(
    "--wait/--no-wait",
    default=None,
    help="Follow the task live and print its result (always on with --embedded).",
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
    """Submit an ML problem (flags, --input JSON or --batch JSONL)."""
    settings = _settings(ctx)
    if opts["batch"]:
        inputs = _read_batch(Path(opts["batch"]))
    else:
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
            _fail(
                'describe the problem: --description "..." (or --input task.json / --batch tasks.jsonl; '
                "an iteration, --problem P [--previous-iteration I], inherits its base's description)"
            )
        inputs = [_to_user_input(body, "--input" if opts["input"] else "flags")]
    if opts["embedded"] and opts["wait"] is False:
        # The pipeline lives in this process and stops with it: returning early would lose the task.
        _fail("--embedded runs the pipeline inside this command, so it always waits: drop --no-wait")
    wait = bool(opts["wait"] or opts["as_json"] or opts["embedded"])
    with _friendly_errors(embedded_hint=True), _client(settings, embedded=opts["embedded"]) as client:
        if opts["batch"]:
            _submit_batch(client, inputs, as_json=opts["as_json"], timeout=opts["timeout"])
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
            result = _wait_live(client, task_id, opts["timeout"])
            _print_result(result, full=opts["full"])
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


# A batch is read whole into memory and submitted in one go: bound it so that a wrong file
# (a log, a dataset) fails at once instead of exhausting memory or flooding the broker.
MAX_BATCH_BYTES = 64 * 1024 * 1024
MAX_BATCH_TASKS = 100_000


def _read_batch(path: Path) -> list[UserInput]:
    try:
        size = path.stat().st_size
        if size > MAX_BATCH_BYTES:
            _fail(f"--batch {path}: {size} bytes, more than the {MAX_BATCH_BYTES} accepted; split the file")
    except OSError as exc:
        _fail(f"--batch {path}: {exc}")
    lines = _read_text(path, "--batch").splitlines()
    if sum(1 for line in lines if line.strip()) > MAX_BATCH_TASKS:
        _fail(f"--batch {path}: more than {MAX_BATCH_TASKS} tasks; split the file")
    inputs: list[UserInput] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            body = json.loads(line)
        except json.JSONDecodeError as exc:
            _fail(f"--batch {path}:{n}: not JSON ({exc.msg})")
        if not isinstance(body, dict):
            _fail(f"--batch {path}:{n}: expected a JSON object")
        inputs.append(_to_user_input(body, f"--batch {path}:{n}"))
    if not inputs:
        _fail(f"--batch {path}: no tasks in the file")
    return inputs


def _submit_batch(client: Client, inputs: list[UserInput], *, as_json: bool, timeout: float) -> None:
    """Submit every task, then wait for all of them (a batch always waits: its output is results)."""
    ids: list[TaskId] = []
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    ) as progress:
        sub = progress.add_task("submitted", total=len(inputs))
        for ui in inputs:
            ids.append(client.submit(ui, watch=True))
            progress.advance(sub)
        fin = progress.add_task("finished", total=len(ids))

        def on_progress(ev: StageEvent) -> None:
            if ev.failed or ev.node == PIPELINE[-1].node:
                progress.update(fin, completed=min(len(ids), progress.tasks[fin].completed + 1))

        done = client.wait_many(ids, timeout + len(ids) * 0.5, on_progress)
        progress.update(fin, completed=len(ids))
    if as_json:
        for tid in ids:  # input order
            click.echo(json.dumps(done[tid].to_json(), ensure_ascii=False))
        return
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
    for tid in ids:
        table.add_row(*_summary_row(done[tid]))
    out.print(table)


def _summary_row(r: TaskResult) -> list[str]:
    meta = r.outputs.get("ml_model_metadata")
    model = r.outputs.get("ml_model")
    hw = r.outputs.get("hw_resources")
    co2 = r.outputs.get("carbon_footprint")
    return [
        str(r.task_id),
        r.state,
        (getattr(meta, "ml_model_metadata", None) or ["-"])[0] if meta else "-",
        getattr(model, "model", "-") or "-",
        getattr(hw, "hw_description", "-") or "-",
        f"{getattr(hw, 'latency', 0.0):.4g}" if hw else "-",
        f"{getattr(co2, 'energy_consumption', 0.0):.4g}" if co2 else "-",
        f"{getattr(co2, 'carbon_footprint', 0.0):.4g}" if co2 else "-",
    ]


def _wait_live(client: Client, task_id: TaskId, timeout: float) -> TaskResult:
    """Show the six stages as they complete, then return the stored result."""
    seen: dict[str, tuple[float, str | None]] = {}
    start = time.monotonic()

    def render() -> Table:
        t = Table(title=f"task {task_id}", show_header=True)
        t.add_column("node")
        t.add_column("state")
        t.add_column("at (ms)", justify="right")
        running_marked = False
        for stage in PIPELINE:
            if stage.node in seen:
                at, failed = seen[stage.node]
                state = f"[red]failed: {failed}[/]" if failed else "[green]done[/]"
                t.add_row(stage.node, state, f"{at * 1e3:.0f}")
            elif not running_marked and not any(f for _, f in seen.values()):
                t.add_row(stage.node, "[yellow]running[/]", "")
                running_marked = True
            else:
                t.add_row(stage.node, "[dim]waiting[/]", "")
        return t

    if not out.is_terminal:

        def on_line(ev: StageEvent) -> None:
            if ev.task_id == task_id:
                state = f"failed: {ev.failed}" if ev.failed else "done"
                out.print(
                    f"[{(time.monotonic() - start) * 1e3:7.0f} ms] {ev.node:<18} {state}",
                    highlight=False,
                    soft_wrap=True,
                )

        return client.wait(task_id, timeout, on_line)

    with Live(render(), console=out, refresh_per_second=12, transient=False) as live:

        def on_event(ev: StageEvent) -> None:
            if ev.task_id == task_id:
                seen[ev.node] = (time.monotonic() - start, ev.failed)
                live.update(render())

        return client.wait(task_id, timeout, on_event)


#: Longest value shown in a result table unless --full (the reasoning texts run to kilobytes).
CUT_AT = 600


def _print_result(r: TaskResult, *, full: bool = False) -> None:
    """The task's state, what changes its meaning (no feasible model, constraints not met, a
    question for the user), its goal, then every stage's record."""
    alerts = task_alerts(r.outputs)
    colour = {"succeeded": "green", "failed": "red", "cancelled": "yellow"}.get(r.state, "white")
    headline = f"task {r.task_id}: [{colour}]{r.state}[/]"
    if r.error:
        headline += f" — {escape(r.error)}"
    blocking = [a for a in alerts if a.kind in ("no_model", "constraints_not_met")]
    if blocking and r.state == "succeeded":  # the pipeline ran through, but the answer is "none fits"
        what = {"no_model": "NO FEASIBLE MODEL", "constraints_not_met": "CONSTRAINTS NOT MET"}
        headline = (
            f"task {r.task_id}: [bold yellow]{what[blocking[0].kind]}[/] (every stage ran; read why below)"
        )
    out.print(headline, soft_wrap=True)
    for alert in blocking:
        out.print(f"  [bold yellow]{alert.node}:[/] {escape(alert.title)}", soft_wrap=True)
        for key, value in alert.details.items():
            out.print(f"    {key.replace('_', ' ')}: {escape(value)}", soft_wrap=True, highlight=False)
    if figures_are_placeholders(r.outputs):
        out.print(
            "  (latency, power, energy and carbon below are placeholders: no model was costed)",
            soft_wrap=True,
        )
    if r.note:
        out.print(f"note: {escape(r.note)}", soft_wrap=True, highlight=False)
    meta = r.outputs.get("ml_model_metadata")
    goals = list(getattr(meta, "ml_model_metadata", None) or [])
    if goals:
        goal = f"goal: [bold]{escape(goals[0])}[/]"
        question = clarification(r.outputs)
        if question:
            goal += f"  [bold yellow]needs clarification:[/] {escape(question)}"
        out.print(goal, soft_wrap=True, highlight=False)
    cut = False
    for stage in PIPELINE:
        rec = r.outputs.get(stage.kind)
        if rec is None:
            continue
        data = to_json_dict(rec)
        data.pop("task_id", None)
        table = Table(title=stage.node, show_header=False, title_justify="left", expand=False)
        table.add_column("field", style="bold")
        table.add_column("value", overflow="fold")
        for key, value in data.items():
            if key == "input_batch":
                value = f"{len(value)} array(s)"
            elif key == "raw_model":
                value = f"{len(value)} base64 chars" if value else ""
            elif isinstance(value, float):
                value = f"{value:.6g}"
            label = f"{key} [{UNITS[key]}]" if key in UNITS else key
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            if not full and len(text) > CUT_AT:
                text, cut = text[:CUT_AT] + f" … ({len(text) - CUT_AT} more characters)", True
            # Text, not markup: "[s]" or a JSON list must print as written.
            table.add_row(Text(label), Text(text))
        out.print(table)
    if cut:
        p, i = r.task_id.problem_id, r.task_id.iteration_id
        out.print(
            f"(long values cut: `sustainml result {p} {i} --full` shows them whole)",
            highlight=False,
            soft_wrap=True,
        )


# --------------------------------------------------------------------------------------------
# operator commands
# --------------------------------------------------------------------------------------------
@cli.command()
@click.argument("problem_id", type=int)
@click.argument("iteration_id", type=int, default=1)
@click.option(
    "--full", is_flag=True, help="Every value whole (the reasoning is otherwise cut at 600 characters)."
)
@click.option("--json", "as_json", is_flag=True, help="Complete result as JSON.")
@click.pass_context
def result(ctx: click.Context, problem_id: int, iteration_id: int, full: bool, as_json: bool) -> None:
    """Show the stored result of task PROBLEM_ID ITERATION_ID (default iteration 1)."""
    with _friendly_errors(), Client(_settings(ctx)) as client:
        res = client.result(_task_id(problem_id, iteration_id))
    if as_json:
        click.echo(json.dumps(res.to_json(), ensure_ascii=False))
    else:
        _print_result(res, full=full)


def _task_id(p: int, i: int) -> TaskId:
    try:
        return TaskId(problem_id=p, iteration_id=i)
    except MessageError as exc:
        _fail(str(exc))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Node status per type and per replica, from the orchestrator's heartbeat registry."""
    with _friendly_errors(), Client(_settings(ctx)) as client:
        st = client.status()
    if as_json:
        click.echo(json.dumps(st))
        return
    table = Table(title="nodes")
    table.add_column("node")
    table.add_column("status")
    table.add_column("replicas", justify="right")
    for name, s in st["nodes"].items():
        n = sum(1 for r in st["replicas"] if r["node_name"] == name)
        table.add_row(name, s, str(n))
    out.print(table)
    if st["replicas"]:
        from sustainml.messages import Status

        rows = [
            [
                r["node_name"],
                r["replica_id"],
                Status(r["status"]).name,
                str(r["in_flight"]),
                str(r["processed"]),
                f"{r['age_s']:.1f}",
                r["error_description"] or "",
            ]
            for r in st["replicas"]
        ]
        # Short headers and no error column when there is no error: the table fits 80 columns.
        headers = ["node", "replica", "status", "busy", "done", "seen (s)", "error"]
        shown = headers if any(row[6] for row in rows) else headers[:6]
        rt = Table(title="replicas (busy: tasks in flight; done: processed; seen: since last heartbeat)")
        for i, header in enumerate(shown):
            if header == "error":
                rt.add_column(header, overflow="fold")
            else:
                width = max(len(header), *(len(row[i]) for row in rows))
                rt.add_column(header, no_wrap=True, min_width=width, justify="right" if i >= 3 else "left")
        for row in rows:
            rt.add_row(*(Text(c) for c in row[: len(shown)]))
        out.print(rt)


@cli.command()
@click.option("--state", type=click.Choice(["queued", "running", "succeeded", "failed", "cancelled"]))
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--wide", is_flag=True, help="Also the error, the note and when each task finished.")
@click.option("--json", "as_json", is_flag=True, help="The rows as JSON (with problem_short_description).")
@click.pass_context
def tasks(ctx: click.Context, state: str | None, limit: int, wide: bool, as_json: bool) -> None:
    """List tasks, newest first, with their descriptions."""
    with _friendly_errors(), Client(_settings(ctx)) as client:
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
        title=f"tasks of namespace {_settings(ctx).namespace}", title_justify="left", box=box.SIMPLE_HEAD
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


@cli.command()
@click.argument("node")
@click.argument("request")
@click.option("--timeout", type=float, help="Seconds to wait (default SUSTAINML_RPC_TIMEOUT).")
@click.pass_context
def config(ctx: click.Context, node: str, request: str, timeout: float | None) -> None:
    """Send a configuration REQUEST to NODE and print its answer as JSON.

    \b
    The shipped nodes answer:
      ml_model_metadata  modality | metrics, GOAL | problem_from_modality, MODALITY |
                         model_info, MODEL | dataset_path, FILE | in_out_modalities
      app_requirements   requirements
      hw_constraints     hardwares | hardware_info, DEVICE
      ml_model           models | model_from_goal, GOAL[, ...] | hf_search, TEXT
      hw_resources       hardwares | hardware_info, DEVICE
      carbon_footprint   regions[, CONTINENT] | intensity, REGION

    Anything else is answered "unsupported" (exit code 1), e.g.
    `sustainml config ml_model "model_from_goal, image-classification"`.
    """
    try:
        resolve_stage(node)
    except KeyError as exc:
        _fail(str(exc.args[0]))
    with _friendly_errors(), Client(_settings(ctx)) as client:
        res = client.config(node, request, timeout)
    body = to_json_dict(res)
    with contextlib.suppress(json.JSONDecodeError):  # a node may answer plain text: show it as is
        body["configuration"] = json.loads(res.configuration) if res.configuration else None
    outcome, message = config_outcome(res)
    body["outcome"] = outcome
    click.echo(json.dumps(body, ensure_ascii=False, indent=2))
    name = resolve_stage(node).node
    if outcome == "unsupported":
        _fail(
            f"unsupported: {name} does not answer the configuration request {request!r} "
            "(`sustainml config --help` lists the requests each node answers)"
        )
    if outcome == "error":
        _fail(f"{name} could not answer {request!r}: {message or 'no reason given'}")


@cli.command()
@click.argument("problem_id", type=int, required=False)
@click.argument("iteration_id", type=int, required=False)
@click.pass_context
def cancel(ctx: click.Context, problem_id: int | None, iteration_id: int | None) -> None:
    """Cancel a task (default: the latest unfinished one). A task that has already finished is left
    as it ended: the command says so and exits with 1."""
    if (problem_id is None) != (iteration_id is None):
        _fail("give both PROBLEM_ID and ITERATION_ID, or neither (the latest unfinished task)")
    tid = _task_id(problem_id, iteration_id) if problem_id is not None and iteration_id is not None else None
    with _friendly_errors(), Client(_settings(ctx)) as client:
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


_NODE_COMMANDS = {
    "pause": "CMD_STOP_NODE",
    "resume": "CMD_START_NODE",
    "reset": "CMD_RESET_NODE",
    "terminate": "CMD_TERMINATE_NODE",
}


@cli.command()
@click.argument("target")
@click.argument("command", type=click.Choice(sorted(_NODE_COMMANDS)))
@click.pass_context
def control(ctx: click.Context, target: str, command: str) -> None:
    """Send a NodeControl COMMAND to every replica of TARGET (a node name, or `all`):
    pause (stop consuming), resume, reset (clear errors and cancellations), terminate (graceful exit)."""
    from sustainml.messages import CmdNode
    from sustainml.topology import ALL_NODES_KEY

    if target != ALL_NODES_KEY:
        try:
            target = resolve_stage(target).node
        except KeyError as exc:
            _fail(str(exc.args[0]))
    with _friendly_errors(), Client(_settings(ctx)) as client:
        client.control(target, cmd_node=CmdNode[_NODE_COMMANDS[command]])
    out.print(f"sent {command} to {target}", soft_wrap=True)


@cli.group(name="eval")
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
    from sustainml.workers.logic.encoder import evaluate
    from sustainml.workers.logic.encoder.evaluate import check_descriptions, evaluate_held_out, render_checks

    if descriptions is not None:
        try:
            checks = check_descriptions(descriptions)
        except ValueError as exc:
            _fail(str(exc))
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
@click.option("--part", "parts", multiple=True, help="Only these parts (repeatable): training, forecast, "
              "parameters, mlperf, serving.")
@click.option("--json", "as_json", is_flag=True)
def eval_published(parts: tuple[str, ...], as_json: bool) -> None:
    """Estimates against published figures: training footprints, forecasts, parameter counts,
    MLPerf inference latency and serving energy, each row with its source."""
    from sustainml import validation

    try:
        tables = validation.run_all(list(parts) or None)
    except KeyError as exc:
        _fail(str(exc.args[0]))
    if as_json:
        click.echo(json.dumps([t.to_json() for t in tables], indent=2))
    else:
        click.echo("\n\n".join(t.render() for t in tables))


@cli.command()
@click.argument("kind", type=click.Choice(["models", "hardware", "regions"]))
@click.option("--wide", is_flag=True, help="Every column (wider than 80 characters; try `| less -S`).")
@click.option("--json", "as_json", is_flag=True, help="Every field of every entry, with its sources.")
def catalogue(kind: str, wide: bool, as_json: bool) -> None:
    """List a catalogue: models, hardware or regions (carbon intensity). The table fits 80
    columns; --wide shows every column, --json every field."""
    from sustainml.catalogue import listing

    if as_json:
        click.echo(json.dumps(listing.as_json(kind), ensure_ascii=False, indent=2))
    elif wide:
        # As wide as the table needs: a pager or a wide terminal shows each entry on one line.
        Console(width=max(out.width, 260)).print(listing.render_table(kind, wide=True))
    else:
        out.print(listing.render_table(kind, wide=False))


# --------------------------------------------------------------------------------------------
# long-running processes
# --------------------------------------------------------------------------------------------
@cli.command()
@click.argument("node")
@click.pass_context
def worker(ctx: click.Context, node: str) -> None:
    """Run one replica of the shipped NODE (ml_model_metadata, app_requirements, hw_constraints,
    ml_model, hw_resources, carbon_footprint)."""
    from sustainml.workers.shipped import shipped_node

    try:
        stage = resolve_stage(node)
    except KeyError as exc:
        _fail(str(exc.args[0]))
    with _friendly_errors():
        shipped_node(stage.node, settings=_settings(ctx)).spin()


@cli.command()
@click.option(
    "--http",
    "http",
    metavar="HOST:PORT",
    envvar="SUSTAINML_HTTP",
    help="Also serve the HTTP API and dashboard there, e.g. 127.0.0.1:5001 (env SUSTAINML_HTTP; "
    "default: not served; `off`: not served).",
)
@click.pass_context
def orchestrator(ctx: click.Context, http: str | None) -> None:
    """Run the orchestrator (task ids, TaskDB, node registry, requests), optionally with the HTTP API.
    Only an explicit --http or SUSTAINML_HTTP turns the API on here; `sustainml up` always does."""
    from sustainml.orchestrator.core import Orchestrator

    settings = _settings(ctx)
    address = _http_address(settings, http) if http is not None else None
    with _friendly_errors():
        orch = Orchestrator(settings)
        if address is None:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: orch.stop())
            err.print(
                f"orchestrator running (namespace {settings.namespace}, TaskDB {_safe_db(settings)})",
                soft_wrap=True,
            )
            orch.spin()
            return
        _serve_with_api(orch, settings, address)


def _http_address(settings: Settings, value: str) -> tuple[str, int] | None:
    try:
        return settings.with_overrides(http=value).http_address
    except ConfigError as exc:
        _fail(f"--http: {exc}")


def _serve_with_api(orch: Orchestrator, settings: Settings, address: tuple[str, int]) -> None:
    """The orchestrator and uvicorn (in a thread) in this process. SIGINT/SIGTERM or
    ``POST /terminate`` stop the HTTP server first (SSE streams end, requests in flight finish),
    then the orchestrator."""
    import threading

    from sustainml.api import ApiServer

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    orch.start()
    try:
        server = ApiServer(settings, orch, *address, on_terminate=stop.set).start()
    except (OSError, RuntimeError) as exc:
        orch.close()
        _fail(f"cannot serve the HTTP API on {address[0]}:{address[1]}: {exc}")
    err.print(
        f"orchestrator running (namespace {settings.namespace}, TaskDB {_safe_db(settings)}); "
        f"HTTP API on {server.url} (docs {server.url}/docs)",
        soft_wrap=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        orch.close()


def _safe_db(settings: Settings) -> str:
    url = settings.effective_db_url
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


@cli.command()
@click.option("--replicas", multiple=True, metavar="NODE=N", help="Replicas of a node (default 1 each).")
@click.option(
    "--http",
    "http",
    metavar="HOST:PORT|off",
    help="Where the orchestrator serves the HTTP API (default SUSTAINML_HTTP, 127.0.0.1:5001).",
)
@click.pass_context
def up(ctx: click.Context, replicas: tuple[str, ...], http: str | None) -> None:
    """Run the orchestrator (with the HTTP API) and all six workers, one process each, supervised.
    Ctrl-C stops all."""
    settings = _settings(ctx)
    address = _http_address(settings, http if http is not None else settings.http)
    explicit = http is not None or bool(os.environ.get("SUSTAINML_HTTP"))
    if address is not None and not _port_free(address):
        where = f"{address[0]}:{address[1]}"
        if explicit:
            _fail(f"cannot serve the HTTP API on {where}: address in use (SUSTAINML_HTTP=host:port or off)")
        # The default address only: another deployment on this machine has it; run without the API.
        err.print(
            f"[yellow]HTTP API not served: {where} is in use (set SUSTAINML_HTTP=host:port)[/]",
            soft_wrap=True,
        )
        address = None
    counts: dict[str, int] = {}
    for item in replicas:
        name, _, n = item.partition("=")
        try:
            counts[resolve_stage(name).node] = int(n)
        except (KeyError, ValueError):
            _fail(f"--replicas {item!r}: expected NODE=N with a node name and a count")
    _check_broker(settings)
    env = dict(os.environ, SUSTAINML_BROKER_URL=settings.broker_url, SUSTAINML_NAMESPACE=settings.namespace)
    orch_args = ["orchestrator"]
    if address is not None:
        host = f"[{address[0]}]" if ":" in address[0] else address[0]
        orch_args += ["--http", f"{host}:{address[1]}"]
    specs: list[tuple[str, list[str]]] = [("orchestrator", orch_args)]
    for stage in PIPELINE:
        for i in range(counts.get(stage.node, 1)):
            specs.append((f"{stage.kind}-{i + 1}", ["worker", stage.kind]))
    Supervisor(specs, env, settings).run()


def _port_free(address: tuple[str, int]) -> bool:
    import socket

    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError:
            return False
    return True


def _check_broker(settings: Settings) -> None:
    from sustainml.transport import amqp_transport

    with _friendly_errors():
        probe = amqp_transport(settings, "probe", connect_timeout=5.0, retry_refused=False)
        probe.connect()
        probe.close()


class Supervisor:
    """Starts each component as a child process, restarts one that dies (with backoff), and on
    Ctrl-C/SIGTERM stops them all gracefully (SIGTERM, then SIGKILL after a grace period)."""

    GRACE_S = 30.0

    READY_WAIT_S = 300.0

    def __init__(
        self, specs: list[tuple[str, list[str]]], env: dict[str, str], settings: Settings | None = None
    ) -> None:
        self.specs = specs
        self.settings = settings  # to say when the deployment answers
        # PYTHONSAFEPATH: a child started with -m must import the installed sustainml, not a
        # `sustainml/` folder that happens to be in the working directory (a source checkout).
        self.env = {**env, "PYTHONSAFEPATH": "1"}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.restarts: dict[str, list[float]] = {}
        self.stopping = False

    def _announce_ready(self, settings: Settings) -> None:
        """Say when the orchestrator answers and every node reports IDLE: "started" is not
        "ready" (the first start of a worker loads its models, a while on a busy machine)."""
        began = time.monotonic()
        quick = settings.with_overrides(rpc_timeout=2.0)
        while not self.stopping and time.monotonic() - began < self.READY_WAIT_S:
            try:
                with Client(quick) as client:
                    nodes = client.status()["nodes"]
                if nodes and all(state == "IDLE" for state in nodes.values()):
                    err.print(
                        f"[green]ready[/] after {time.monotonic() - began:.0f} s: the orchestrator and the "
                        f"{len(nodes)} nodes answer; in another terminal: "
                        '`sustainml submit --description "..." --wait`',
                        soft_wrap=True,
                    )
                    return
            except (OrchestratorError, TransportError, TimeoutError):
                pass  # not up yet
            time.sleep(1.0)
        if not self.stopping:
            err.print(
                f"[yellow]not all nodes ready after {self.READY_WAIT_S:.0f} s[/]: see `sustainml status`",
                soft_wrap=True,
            )

    def _spawn(self, name: str, args: list[str]) -> None:
        self.procs[name] = subprocess.Popen([sys.executable, "-m", "sustainml.cli", *args], env=self.env)
        err.print(f"started {name} (pid {self.procs[name].pid})", soft_wrap=True)

    def run(self) -> None:
        def on_signal(signum: int, frame: object) -> None:
            self.stopping = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        for name, args in self.specs:
            self._spawn(name, args)
        err.print("all components started; waiting for them to be ready (Ctrl-C stops)", soft_wrap=True)
        if self.settings is not None:
            threading.Thread(target=self._announce_ready, args=(self.settings,), daemon=True).start()
        args_of = dict(self.specs)
        while not self.stopping:
            time.sleep(0.5)
            for name, proc in list(self.procs.items()):
                code = proc.poll()
                if code is None or self.stopping:
                    continue
                recent = [t for t in self.restarts.get(name, []) if time.monotonic() - t < 60]
                if len(recent) >= 5:
                    err.print(
                        f"[red]{name} exited {code} five times in a minute; not restarting it[/]",
                        soft_wrap=True,
                    )
                    del self.procs[name]
                    continue
                err.print(f"[yellow]{name} exited with {code}; restarting[/]", soft_wrap=True)
                self.restarts[name] = [*recent, time.monotonic()]
                time.sleep(min(2 ** len(recent) * 0.5, 8))
                self._spawn(name, args_of[name])
        self._stop_all()

    def _stop_all(self) -> None:
        err.print("stopping all components...", soft_wrap=True)
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.GRACE_S
        for name, proc in self.procs.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                err.print(f"[red]{name} did not stop in {self.GRACE_S:g} s; killing it[/]", soft_wrap=True)
                proc.kill()
        err.print("stopped", soft_wrap=True)


@cli.command()
@click.option("--force", is_flag=True, help="Also while nodes of the namespace are running.")
@click.option("--data", "with_data", is_flag=True, help="Also delete the namespace's TaskDB folder.")
@click.pass_context
def teardown(ctx: click.Context, force: bool, with_data: bool) -> None:
    """Remove the namespace's queues and exchanges from the broker (all of its tasks in flight and
    dead letters with them). Refused while an orchestrator or worker of the namespace is running,
    unless --force. Private queues of stopped processes expire on their own within 60 s."""
    from sustainml.topology import Topology, delete_all
    from sustainml.transport import amqp_transport

    settings = _settings(ctx)
    topology = Topology.of(settings)
    with _friendly_errors():
        transport = amqp_transport(settings, "teardown", retry_refused=False)
        transport.connect()
        try:
            busy: list[str] = []
            found = 0
            for spec in [*topology.durable_queues(), *topology.retry_queues()]:
                try:
                    with _quiet_missing_queue_logs():
                        _ready, consumers = transport.queue_counts(spec.name)
                except KeyError:
                    continue  # not declared (or already removed)
                found += 1
                if consumers:
                    busy.append(f"{spec.name} ({consumers} consumer{'s' if consumers > 1 else ''})")
            if busy and not force:
                _fail(
                    f"namespace {settings.namespace!r} is in use: {', '.join(busy[:3])}"
                    + (f" and {len(busy) - 3} more" if len(busy) > 3 else "")
                    + "; stop `sustainml up` (Ctrl-C) or its workers first, or add --force"
                )
            delete_all(transport, topology)
        finally:
            transport.close()
    gone = "" if found else " (its queues were already gone)"
    out.print(
        f"namespace {settings.namespace!r}: {found} queues and {len(topology.exchanges())} exchanges "
        f"removed from the broker{gone}",
        highlight=False,
        soft_wrap=True,
    )
    db_dir = settings.namespace_dir
    if with_data:
        if settings.db_url:
            err.print(
                f"TaskDB kept: it is SUSTAINML_DB_URL ({_safe_db(settings)}), not a folder of ours",
                soft_wrap=True,
            )
        elif db_dir.exists():
            import shutil

            shutil.rmtree(db_dir)
            out.print(f"removed {db_dir}", highlight=False, soft_wrap=True)


@contextmanager
def _quiet_missing_queue_logs() -> Iterator[None]:
    """pika logs a WARNING when the broker closes a channel for a missing queue; to teardown's
    probe that is an answer ("not there"), not a problem."""

    class _Drop(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "NOT_FOUND - no queue" not in record.getMessage()

    logger = logging.getLogger("pika.channel")
    drop = _Drop()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


cli.add_command(dlq)
cli.add_command(bench)
cli.add_command(health)


def main() -> None:
    cli(prog_name="sustainml")


if __name__ == "__main__":
    main()
