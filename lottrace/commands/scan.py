"""`lottrace scan`: a GS1 barcode read as receiving and fulfillment read it."""

from __future__ import annotations

import sys
from datetime import date
from typing import Annotated

import typer

from lottrace.commands.output import FormatOption, OutputFormat, fail, stdout, write_json
from lottrace.render import scan_table
from shared.gs1 import Gs1Error, parse_gs1


def register(app: typer.Typer) -> None:
    app.command()(scan)


GROUP_SEPARATOR_SPELLINGS = ("<GS>", "<gs>", "\\x1d", "\\x1D", "\\u001d")


def with_group_separators(barcode: str) -> str:
    """A barcode typed on a command line, where FNC1 (ASCII 29) cannot be typed: `<GS>` or
    `\\x1d` stand for it."""
    for spelling in GROUP_SEPARATOR_SPELLINGS:
        barcode = barcode.replace(spelling, "\x1d")
    return barcode


def scan(
    barcode: Annotated[
        str,
        typer.Argument(
            help="A GS1 element string as a scanner sends it (`]C1...`, FNC1 typed as <GS>)"
            " or as printed, `(01)...(17)...(10)...`; '-' reads one line from stdin."
        ),
    ],
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Read a GS1 barcode as receiving and fulfillment read it: GTIN, lot, dates, count.

    A barcode that cannot be read exits with status 2, naming the element to look at.
    """
    text = sys.stdin.readline().rstrip("\r\n") if barcode == "-" else barcode
    try:
        parsed = parse_gs1(with_group_separators(text))
    except Gs1Error as error:
        fail(f"{error.element}: {error}", code=2)
    if output is OutputFormat.JSON:
        document = {
            name: value.isoformat() if isinstance(value, date) else value
            for name, value in vars(parsed).items()
            if name != "raw" and value is not None
        }
        write_json({**document, "human_readable": parsed.as_human_readable()})
        return
    stdout().print(scan_table(parsed))
