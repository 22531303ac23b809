"""`sustainml status | config | control`: what the nodes report, and requests sent to them
through the orchestrator (configuration questions, NodeControl commands)."""

from __future__ import annotations

import contextlib
import json

import click
from rich.table import Table
from rich.text import Text

from sustainml.cli.common import fail, friendly_errors, out, settings_of
from sustainml.display import config_outcome
from sustainml.messages import to_json_dict
from sustainml.orchestrator.client import Client
from sustainml.topology import resolve_stage


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Node status per type and per replica, from the orchestrator's heartbeat registry."""
    with friendly_errors(), Client(settings_of(ctx)) as client:
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


@click.command()
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
        fail(str(exc.args[0]))
    with friendly_errors(), Client(settings_of(ctx)) as client:
        res = client.config(node, request, timeout)
    body = to_json_dict(res)
    with contextlib.suppress(json.JSONDecodeError):  # a node may answer plain text: show it as is
        body["configuration"] = json.loads(res.configuration) if res.configuration else None
    outcome, message = config_outcome(res)
    body["outcome"] = outcome
    click.echo(json.dumps(body, ensure_ascii=False, indent=2))
    name = resolve_stage(node).node
    if outcome == "unsupported":
        fail(
            f"unsupported: {name} does not answer the configuration request {request!r} "
            "(`sustainml config --help` lists the requests each node answers)"
        )
    if outcome == "error":
        fail(f"{name} could not answer {request!r}: {message or 'no reason given'}")


_NODE_COMMANDS = {
    "pause": "CMD_STOP_NODE",
    "resume": "CMD_START_NODE",
    "reset": "CMD_RESET_NODE",
    "terminate": "CMD_TERMINATE_NODE",
}


@click.command()
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
            fail(str(exc.args[0]))
    with friendly_errors(), Client(settings_of(ctx)) as client:
        client.control(target, cmd_node=CmdNode[_NODE_COMMANDS[command]])
    out.print(f"sent {command} to {target}", soft_wrap=True)


