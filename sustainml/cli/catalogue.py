"""`sustainml catalogue`: the shipped catalogues (models, hardware, regions) as tables or JSON."""

from __future__ import annotations

import json

import click
from rich.console import Console

from sustainml.cli.common import out


@click.command()
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


