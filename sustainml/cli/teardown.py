"""`sustainml teardown`: remove a namespace's queues and exchanges (and, asked, its TaskDB)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import click

from sustainml.cli.common import err, fail, friendly_errors, out, safe_db, settings_of


@click.command()
@click.option("--force", is_flag=True, help="Also while nodes of the namespace are running.")
@click.option("--data", "with_data", is_flag=True, help="Also delete the namespace's TaskDB folder.")
@click.pass_context
def teardown(ctx: click.Context, force: bool, with_data: bool) -> None:
    """Remove the namespace's queues and exchanges from the broker (all of its tasks in flight and
    dead letters with them). Refused while an orchestrator or worker of the namespace is running,
    unless --force. Private queues of stopped processes expire on their own within 60 s."""
    from sustainml.topology import Topology, delete_all
    from sustainml.transport import amqp_transport

    settings = settings_of(ctx)
    topology = Topology.of(settings)
    with friendly_errors():
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
                fail(
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
                f"TaskDB kept: it is SUSTAINML_DB_URL ({safe_db(settings)}), not a folder of ours",
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


