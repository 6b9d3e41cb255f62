"""The ``awfdrs`` command. Every command reads the same ``AWFDRS_*`` settings and, where they
are unset, those of an ``awfdrs up`` running in this folder."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperOption

from awfdrs import __version__
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


def _no_type_for_flags(display: Any) -> Any:
    """Typer shows every option's type in --help, flags included (``--json <bool>``): a flag
    takes no value, so it shows none."""

    def shown(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag or self.count else display(self, ctx)

    return shown


setattr(TyperOption, "display_type_rich", _no_type_for_flags(TyperOption.display_type_rich))  # noqa: B010


def _version(value: bool) -> None:
    if value:
        typer.echo(f"awfdrs {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """awfdrs: detect failures in business workflows and remediate them safely."""


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
