"""The ``awfdrs`` command. Every command reads the same ``AWFDRS_*`` settings and, where they
are unset, those of an ``awfdrs up`` running in this folder."""

from __future__ import annotations

import os
import sys

import typer

from awfdrs.cli.audit import audit
from awfdrs.cli.incidents import incidents
from awfdrs.cli.ingest import ingest
from awfdrs.cli.keys import keys
from awfdrs.cli.kill_switch import kill_switch
from awfdrs.cli.setup import tenants, workflows
from awfdrs.cli.stack import api, migrate, up, worker
from awfdrs.cli.vendors import vendors

app = typer.Typer(
    help="awfdrs: detect failures in business workflows and remediate them safely.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(up)
app.command()(worker)
app.command()(api)
app.command()(migrate)
app.command()(ingest)
app.add_typer(tenants, name="tenants")
app.add_typer(workflows, name="workflows")
app.add_typer(vendors, name="vendors")
app.add_typer(incidents, name="incidents")
app.add_typer(kill_switch, name="kill-switch")
app.add_typer(keys, name="keys")
app.add_typer(audit, name="audit")


def main() -> None:
    status = 0
    try:
        app()
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal SDK's native runtime may abort the interpreter at exit (sdk-python issue 300).
    os._exit(status)


__all__ = ["app", "main"]
