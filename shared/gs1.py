"""Reading GS1 element strings as a barcode scanner or a person sends them.

A scan arrives in one of two shapes:

* the element string a scanner transmits, optionally behind a symbology
  identifier (``]C1`` GS1-128, ``]d2`` GS1 DataMatrix, ``]Q3`` GS1 QR, ``]e0``
  GS1 DataBar), with FNC1 sent as ASCII 29 (GS) after variable-length elements:
  ``0109501101530003172612311010D9T``;
* the human-readable form printed under the barcode and typed by people:
  ``(01)09501101530003(17)261231(10)10D9T``.

biip does the GS1 work (the table of application identifiers, value patterns,
check digits, the date century window, day ``00`` as the last day of the
month). This module walks the element strings itself so that every failure is a
``Gs1Error`` naming the element a warehouse person has to look at, and it is
stricter than biip where biip would silently misread a label.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from biip import ParseConfig, ParseError
from biip.checksums import gs1_standard_check_digit
from biip.gs1_application_identifiers import GS1ApplicationIdentifier
from biip.gs1_element_strings import GS1ElementString
from biip.symbology import GS1Symbology, SymbologyIdentifier

from shared.errors import Invalid

_GS = "\x1d"  # how scanners transmit FNC1
_CONFIG = ParseConfig(separator_chars=(_GS,))
_HRI_ELEMENT = re.compile(r"\((\d+)\)([^()]*)")
_YYMMDD_AIS = frozenset({"11", "12", "13", "15", "16", "17"})
_LABELS = {
    "00": "SSCC",
    "01": "GTIN",
    "10": "Lot",
    "11": "Production date",
    "13": "Packaging date",
    "15": "Best before date",
    "17": "Expiry date",
    "21": "Serial number",
    "37": "Count",
}


@dataclass(frozen=True)
class Gs1Scan:
    """The fields lottrace uses from one GS1 scan; other AIs in the scan are dropped.

    One field per AI: sscc (00), gtin (01, all 14 digits), lot_code (10),
    production_date (11), packaging_date (13), best_before_date (15),
    expiry_date (17), serial (21), count (37). ``raw`` is the scan as received.
    """

    raw: str
    gtin: str | None = None
    lot_code: str | None = None
    production_date: date | None = None
    packaging_date: date | None = None
    best_before_date: date | None = None
    expiry_date: date | None = None
    serial: str | None = None
    count: int | None = None
    sscc: str | None = None

    def as_human_readable(self) -> str:
        """The fields as ``(AI)value`` text: fixed-length AIs first, then variable ones.

        Dates are written out in full, so a label date with day ``00`` comes back
        as the last day of its month (``270200`` becomes ``270228``).
        """
        parts = (
            ("00", self.sscc),
            ("01", self.gtin),
            ("11", _yymmdd(self.production_date)),
            ("13", _yymmdd(self.packaging_date)),
            ("15", _yymmdd(self.best_before_date)),
            ("17", _yymmdd(self.expiry_date)),
            ("10", self.lot_code),
            ("21", self.serial),
            ("37", None if self.count is None else str(self.count)),
        )
        return "".join(f"({ai}){value}" for ai, value in parts if value is not None)


class Gs1Error(ValueError):
    """A scan that cannot be read; ``element`` is the AI, like ``"(17)"``, or ``"barcode"``."""

    element: str

    def __init__(self, element: str, message: str) -> None:
        super().__init__(message)
        self.element = element


def parse_gs1(barcode: str) -> Gs1Scan:
    """Read a scanned or typed GS1 element string.

    Raises:
        Gs1Error: the scan is empty, not GS1, damaged, or has an invalid value.
    """
    text = _without_symbology_identifier(barcode.strip())
    if not text:
        raise Gs1Error("barcode", "The scan is empty: no barcode data was received.")
    elements = _read_human_readable(text) if text.startswith("(") else _read_scanned(text)
    return _to_scan(barcode, elements)


def case_labels(barcodes: Iterable[str]) -> list[Gs1Scan]:
    """Scanned case labels, as receiving, inventory and fulfillment check them against a lot:
    each must read, and name its lot (10); anything else is refused as `invalid_barcode`."""
    scans = []
    for barcode in barcodes:
        try:
            scan = parse_gs1(barcode)
        except Gs1Error as error:
            raise Invalid("invalid_barcode", f"{error.element}: {error}") from error
        if not scan.lot_code:
            raise Invalid("invalid_barcode", f"scan {barcode!r} names no lot (10)")
        scans.append(scan)
    return scans


def _without_symbology_identifier(text: str) -> str:
    if not text.startswith("]"):
        return text
    try:
        symbology = SymbologyIdentifier.extract(text)
    except (ParseError, ValueError, IndexError):
        # biip indexes past the end of a bare "]" instead of raising ParseError.
        raise Gs1Error(
            "barcode", f"Not a GS1 barcode: {_snippet(text)!r} has no valid symbology identifier."
        ) from None
    if symbology.gs1_symbology not in GS1Symbology.with_gs1_messages():
        raise Gs1Error(
            "barcode",
            f"The scanner reports symbology {symbology}, which carries no GS1 element "
            "string: scan the GS1-128, GS1 DataMatrix, GS1 QR or GS1 DataBar code instead.",
        )
    # Some scanners send the leading FNC1 of the symbol as a GS after the prefix.
    return text[len(symbology) :].strip()


def _read_scanned(text: str) -> list[GS1ElementString]:
    elements: list[GS1ElementString] = []
    rest = text
    while rest:
        element = _extract(rest, elements[-1] if elements else None)
        elements.append(element)
        rest = rest[len(element) :]
        # biip stops a variable-length value at its maximum length and reads on as
        # if a new element began, so an over-long lot would be cut short silently.
        if element.ai.separator_required and rest and not rest.startswith(_GS):
            raise _overrun(element, rest)
        rest = rest.lstrip(_GS)
    return elements


def _read_human_readable(text: str) -> list[GS1ElementString]:
    # biip's own parse_hri skips pieces it cannot match, such as a trailing "(17)"
    # without a value, so the text is split here and every piece must match.
    text = "".join(text.split())
    elements: list[GS1ElementString] = []
    position = 0
    while position < len(text):
        match = _HRI_ELEMENT.match(text, position)
        if match is None:
            raise Gs1Error(
                "barcode",
                f"Cannot read {_snippet(text[position:])!r}: expected an application "
                "identifier in parentheses followed by its value, like (10)ABC123.",
            )
        number, data = match.groups()
        position = match.end()
        ai = _known_ai(number)
        if not data:
            raise Gs1Error(str(ai), f"{_label(ai)} {ai} has no value.")
        element = _extract(f"{number}{data}", elements[-1] if elements else None)
        if len(element.value) < len(data):
            raise _overrun(element, data[len(element.value) :])
        elements.append(element)
    return elements


def _known_ai(number: str) -> GS1ApplicationIdentifier:
    try:
        ai = GS1ApplicationIdentifier.extract(number)
    except ParseError:
        ai = None
    if ai is None or ai.ai != number:
        raise Gs1Error(f"({number})", f"({number}) is not a GS1 application identifier.")
    return ai


def _extract(text: str, previous: GS1ElementString | None) -> GS1ElementString:
    try:
        ai = GS1ApplicationIdentifier.extract(text)
    except ParseError:
        if previous is None:
            message = (
                f"Not a GS1 barcode: {_snippet(text)!r} does not start with "
                "a known application identifier."
            )
        else:
            message = (
                f"Unknown application identifier at {_snippet(text)!r} after "
                f"{previous.as_hri()}: the barcode is damaged or was cut off."
            )
        raise Gs1Error("barcode", message) from None
    try:
        element = GS1ElementString.extract(text, config=_CONFIG)
    except ParseError:
        raise _invalid_value(ai, text[len(ai) :].split(_GS, 1)[0]) from None
    # biip records a wrong check digit in gtin_error/sscc_error instead of raising.
    if (ai.ai == "01" and element.gtin_error) or (ai.ai == "00" and element.sscc_error):
        expected = gs1_standard_check_digit(element.value[:-1])
        raise Gs1Error(
            str(ai),
            f"{_label(ai)} {ai} {element.value} ends in check digit {element.value[-1]}, "
            f"but it must be {expected}: the label is misprinted or was misread.",
        )
    return element


def _invalid_value(ai: GS1ApplicationIdentifier, data: str) -> Gs1Error:
    label = f"{_label(ai)} {ai}"
    if not data:
        return Gs1Error(str(ai), f"{label} has no value.")
    if not ai.separator_required:
        length = _fixed_length(ai)
        # Without a separator after a fixed-length value the next elements follow.
        data = data[:length]
        if len(data) < length:
            return Gs1Error(
                str(ai), f"{label} is cut short: {data!r} has {len(data)} of {length} digits."
            )
        if ai.ai in _YYMMDD_AIS and data.isdecimal():
            return Gs1Error(str(ai), f"{label} {data!r} is not a valid date (YYMMDD).")
    return Gs1Error(
        str(ai), f"{label} {data!r} does not fit the GS1 format {ai.format.split('+', 1)[1]}."
    )


def _overrun(element: GS1ElementString, rest: str) -> Gs1Error:
    ai = element.ai
    label = f"{_label(ai)} {ai}"
    data = element.value + rest.split(_GS, 1)[0]
    character = rest[0]
    # If the next character would be allowed in place of the last one, biip stopped
    # at the maximum length; otherwise it stopped at a character the AI forbids.
    if re.fullmatch(ai.pattern, f"{ai.ai}{element.value[:-1]}{character}"):
        return Gs1Error(
            str(ai),
            f"{label} {data!r} is {len(data)} characters long; "
            f"at most {len(element.value)} are allowed.",
        )
    return Gs1Error(str(ai), f"{label} {data!r} contains {character!r}, which is not allowed.")


def _to_scan(raw: str, elements: list[GS1ElementString]) -> Gs1Scan:
    by_ai: dict[str, GS1ElementString] = {}
    for element in elements:
        first = by_ai.setdefault(element.ai.ai, element)
        if first.value != element.value:
            raise Gs1Error(
                str(element.ai),
                f"{_label(element.ai)} {element.ai} appears twice with different values: "
                f"{first.value!r} and {element.value!r}.",
            )

    def value(ai: str) -> str | None:
        element = by_ai.get(ai)
        return None if element is None else element.value

    def day(ai: str) -> date | None:
        element = by_ai.get(ai)
        return None if element is None else element.date

    count = value("37")
    return Gs1Scan(
        raw=raw,
        gtin=value("01"),
        lot_code=value("10"),
        production_date=day("11"),
        packaging_date=day("13"),
        best_before_date=day("15"),
        expiry_date=day("17"),
        serial=value("21"),
        count=None if count is None else int(count),
        sscc=value("00"),
    )


def _fixed_length(ai: GS1ApplicationIdentifier) -> int:
    return sum(int(n) for n in re.findall(r"\d+", ai.format.split("+", 1)[1]))


def _label(ai: GS1ApplicationIdentifier) -> str:
    return _LABELS.get(ai.ai, ai.description)


def _yymmdd(day: date | None) -> str | None:
    return None if day is None else f"{day:%y%m%d}"


def _snippet(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:24]}…"


def normalize_gtin(value: str) -> str:
    """A GTIN-8, -12, -13 or -14 as the 14 digits a scanned (01) carries, check digit verified."""
    digits = value.strip()
    if not digits.isdigit() or len(digits) not in (8, 12, 13, 14):
        raise Gs1Error("(01)", f"GTIN {value!r} must be 8, 12, 13 or 14 digits.")
    expected = gs1_standard_check_digit(digits[:-1])
    if int(digits[-1]) != expected:
        raise Gs1Error(
            "(01)", f"GTIN {digits} ends in check digit {digits[-1]}, but it must be {expected}."
        )
    return digits.zfill(14)
