"""`sustainml`: the root command group, its global options, and the registry of every command.

Each command group lives in a module of its own (``tasks``, ``nodes``, ``run``, ``teardown``,
``evaluate``, ``catalogue``, ``dlq``, ``bench``, ``health``); this module only gathers them under
the root group, which turns the environment and the global options into the ``Settings`` every
command reads (``common.settings_of``).

Every command that needs the broker turns "no broker" into one line that says how to fix it;
``submit --embedded`` runs the orchestrator and all six workers in this process on the in-memory
transport, so it works on a machine with no broker at all.
"""

from __future__ import annotations

import logging
import sys
from urllib.parse import urlsplit

import click

from sustainml import __version__
from sustainml.cli.bench import bench
from sustainml.cli.catalogue import catalogue
from sustainml.cli.common import fail
from sustainml.cli.dlq import dlq
from sustainml.cli.evaluate import eval_group
from sustainml.cli.health import health
from sustainml.cli.nodes import config, control, status
from sustainml.cli.run import orchestrator, up, worker
from sustainml.cli.tasks import cancel, result, submit, tasks
from sustainml.cli.teardown import teardown
from sustainml.config import ConfigError, Settings


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
        fail(str(exc))
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
            fail(
                "--broker: a password on the command line is visible to every user of this machine "
                "(ps, shell history); put the URL in SUSTAINML_BROKER_URL (environment or an env file "
                "readable only by you) and leave --broker out"
            )


for _command in (
    submit,
    result,
    status,
    tasks,
    config,
    cancel,
    control,
    eval_group,
    catalogue,
    worker,
    orchestrator,
    up,
    teardown,
    dlq,
    bench,
    health,
):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="sustainml")


if __name__ == "__main__":
    main()
