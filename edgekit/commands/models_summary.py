"""edgekit models summary: the one table of a fleet roll-out (jetson/ansible/rollout.yml) from its records."""

from __future__ import annotations

import json

import click

from edgekit.outputs import writable_file


@click.command("summary")
@click.argument("folder", metavar="DIR", type=click.Path(file_okay=False), default="benchmarks/rollout")
@click.option("--markdown", "md_path", default=None, metavar="FILE", callback=writable_file,
              help="Also write the table as Markdown.")
@click.option("--json", "as_json", is_flag=True, help="Print the records and counts as JSON instead of the table.")
def summary_cmd(folder, md_path, as_json):
    """One table for the roll-out whose records are in DIR (rollout.json + one HOST.json per box): per box the
    model before -> after, gate numbers, health, and switched / up to date / kept / rolled back / failed / not
    reached, with why. Also writes DIR/summary.md and DIR/summary.json."""
    from pathlib import Path

    from edgekit.log import out
    from edgekit.manifest import write_json_atomic, write_text_atomic
    from edgekit.rollout import summary

    done = summary.load(folder)
    text = summary.markdown(done)
    doc = summary.as_json(done)
    write_text_atomic(Path(folder) / "summary.md", text)
    write_json_atomic(Path(folder) / "summary.json", doc)
    if md_path:
        write_text_atomic(md_path, text)
    if as_json:
        click.echo(json.dumps(doc, indent=2, default=str))
    else:
        out.print(summary.table(done))
