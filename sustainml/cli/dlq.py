"""``sustainml dlq``: inspect, replay and purge dead-lettered messages.

The command group only parses and prints; the broker operations are ``dlq_client.DlqClient``.
Producing dead letters (what a worker or the orchestrator does with a message it cannot process)
is ``sustainml.deadletter``, on the messaging layer.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager

import click

from sustainml.cli.common import err, fail, out, settings_or_env
from sustainml.cli.dlq_client import DeadLetter, DlqClient, DlqError
from sustainml.redact import redact_for
from sustainml.transport import TlsConfigError
from sustainml.transport.amqp import connect_failure  # also quiets pika's connection-attempt logs
from sustainml.transport.base import BrokerUnavailable, TransportError


@contextmanager
def _client(ctx: click.Context) -> Iterator[DlqClient]:
    settings = settings_or_env(ctx)
    try:
        with DlqClient(settings) as client:
            yield client
    except BrokerUnavailable as exc:
        # The pika error it was raised from names the cause (refused, credentials, vhost, TLS).
        cause = exc.__cause__ or exc.__context__
        if cause is None:
            fail(redact_for(settings, str(exc)))
        fail(str(connect_failure(cause, settings.broker_url)))  # built without the password
    except (DlqError, TlsConfigError, TransportError, ValueError) as exc:
        fail(redact_for(settings, str(exc)))


@click.group(name="dlq")
def dlq() -> None:
    """Dead-letter queues: list them, show, replay or purge their messages.

    Messages a worker could not process (undecodable, invalid, out of retries) are kept in
    <queue>.dlq with the reason. QUEUE below is a stage (ml_model, HW_RESOURCES ...), 'results'
    (the orchestrator's queue) or a full DLQ name.
    """


@dlq.command(name="list")
@click.option(
    "--examine", type=int, default=200, show_default=True, help="Messages read per DLQ for the reasons."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def list_cmd(ctx: click.Context, examine: int, as_json: bool) -> None:
    """Every DLQ of the namespace with its message count and why its messages are there."""
    with _client(ctx) as client:
        summaries = client.list_queues(examine=max(0, examine))
    if as_json:
        click.echo(json.dumps([s.as_dict() for s in summaries], indent=2))
        return
    out.print(f"dead-letter queues of namespace {client.topology.ns!r}", highlight=False)
    width = max(len(s.queue) for s in summaries)
    for s in summaries:
        state = f"{s.messages} message(s)" if s.exists else "not declared yet"
        out.print(f"  {s.queue:<{width}}  {state}", highlight=False, soft_wrap=True)
        for reason, n in s.reasons.most_common(5):
            out.print(f"      {n} x {reason}", highlight=False, soft_wrap=True)
        if s.examined < s.messages:
            out.print(f"      (reasons of the first {s.examined} only)", highlight=False)
    total = sum(s.messages for s in summaries)
    if total:
        out.print("next: [bold]sustainml dlq show QUEUE[/] to see the messages", highlight=False)


def _when(ts: int | None) -> str:
    if not ts:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _print_letter(d: DeadLetter, *, headers: bool) -> None:
    out.print(f"[bold]#{d.position}[/]  ref [cyan]{d.ref}[/]", highlight=False)
    rows = [
        ("reason", d.reason),
        ("from queue", d.origin_queue or "-"),
        ("exchange", repr(d.origin_exchange)),
        ("routing key", d.origin_routing_key or "-"),
        ("attempts", str(d.attempts) if d.attempts is not None else "-"),
    ]
    if d.last_error:
        rows.append(("last error", d.last_error))
    if d.replays:
        rows.append(("replayed", f"{d.replays} time(s) before"))
    rows += [
        ("type / app", f"{d.type or '-'} / {d.app_id or '-'}"),
        ("published", _when(d.timestamp)),
        ("body", f"{d.size} bytes: {d.body_summary}"),
    ]
    for key, value in rows:
        out.print(f"    {key:<12} {value}", highlight=False, soft_wrap=True)
    if headers:
        text = json.dumps(d.headers, default=str)
        out.print(f"    {'headers':<12} {text}", highlight=False, soft_wrap=True)


@dlq.command()
@click.argument("queue")
@click.option("--limit", "-n", type=int, default=10, show_default=True, help="Messages to show.")
@click.option("--headers", is_flag=True, help="Also print every AMQP header.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def show(ctx: click.Context, queue: str, limit: int, headers: bool, as_json: bool) -> None:
    """The first messages of a DLQ: reason, origin, attempts, a summary of the body.

    Nothing is removed: every message read goes back to its place.
    """
    with _client(ctx) as client:
        count, letters = client.show(queue, limit=max(0, limit))
    if as_json:
        click.echo(json.dumps({"messages": count, "shown": [d.as_dict() for d in letters]}, indent=2))
        return
    name = letters[0].origin_queue + ".dlq" if letters and letters[0].origin_queue else queue
    out.print(f"{name}: {count} message(s), showing {len(letters)}", highlight=False)
    for d in letters:
        _print_letter(d, headers=headers)
    if letters:
        hint = "replay one with [bold]sustainml dlq replay QUEUE REF[/], all with [bold]--all[/]"
        out.print(hint, highlight=False)


@dlq.command()
@click.argument("queue")
@click.argument("refs", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Replay every message of the DLQ.")
@click.option("--to-queue", help="Publish the copies into this queue instead of where they came from.")
@click.option(
    "--via-exchange",
    is_flag=True,
    help="Republish to the original exchange and routing key (every queue bound there gets a copy).",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def replay(
    ctx: click.Context,
    queue: str,
    refs: tuple[str, ...],
    replay_all: bool,
    to_queue: str | None,
    via_exchange: bool,
    as_json: bool,
) -> None:
    """Send dead letters back for processing (REFS from `dlq show`, or --all).

    Each copy is confirmed by the broker before the dead letter is removed; a message that
    cannot be republished stays in the DLQ and is reported.
    """
    if refs and replay_all:
        fail("give message refs or --all, not both")
    if to_queue and via_exchange:
        fail("--to-queue and --via-exchange exclude each other")
    with _client(ctx) as client:
        res = client.replay(queue, refs, replay_all=replay_all, to_queue=to_queue, via_exchange=via_exchange)
    if as_json:
        click.echo(json.dumps({"replayed": res.replayed, "failed": res.failed, "not_found": res.not_found}))
    else:
        out.print(f"replayed {len(res.replayed)} message(s)", highlight=False)
        for ref in res.replayed:
            out.print(f"  {ref}", highlight=False)
        for ref, why in res.failed.items():
            err.print(f"  kept {ref}: {why}", highlight=False)
        for ref in res.not_found:
            err.print(f"  not found: {ref}", highlight=False)
    if res.failed or res.not_found:
        ctx.exit(1)


@dlq.command()
@click.argument("queue")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def purge(ctx: click.Context, queue: str, yes: bool) -> None:
    """Delete every message of a DLQ (asks first unless --yes)."""
    with _client(ctx) as client:
        count, _ = client.show(queue, limit=0)
        if count == 0:
            out.print("nothing to purge", highlight=False)
            return
        if not yes and not click.confirm(f"delete {count} dead-lettered message(s) for good?", default=False):
            fail("not purged (confirm, or pass --yes)")
        removed = client.purge(queue)
    out.print(f"purged {removed} message(s)", highlight=False)


__all__ = ["dlq"]
