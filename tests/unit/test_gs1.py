"""GS1 element strings as scanners and people send them, read into a Gs1Scan."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from shared.gs1 import Gs1Error, Gs1Scan, parse_gs1

GS = "\x1d"
GTIN = "09501101530003"
SSCC = "095011010000000001"

SYMBOLOGIES = {
    "": "no symbology identifier, variable-length lot last without a separator",
    "]C1": "GS1-128 prefix ]C1",
    "]d2": "GS1 DataMatrix prefix ]d2",
    "]Q3": "GS1 QR prefix ]Q3",
    "]e0": "GS1 DataBar prefix ]e0",
}

READABLE = [
    *(
        pytest.param(
            f"{prefix}01{GTIN}1726123110ABC",
            {"gtin": GTIN, "expiry_date": date(2026, 12, 31), "lot_code": "ABC"},
            id=name,
        )
        for prefix, name in SYMBOLOGIES.items()
    ),
    pytest.param(
        f"01{GTIN}10ABC{GS}17261231",
        {"gtin": GTIN, "lot_code": "ABC", "expiry_date": date(2026, 12, 31)},
        id="GS ends a lot in the middle",
    ),
    pytest.param(
        f"]d201{GTIN}10ABC{GS}21SN1",
        {"gtin": GTIN, "lot_code": "ABC", "serial": "SN1"},
        id="scanner drops the final FNC1 after the last variable-length element",
    ),
    pytest.param(
        f"]C101{GTIN}10ABC{GS}",
        {"gtin": GTIN, "lot_code": "ABC"},
        id="scanner sends a trailing GS",
    ),
    pytest.param(
        f"]C1{GS}01{GTIN}10ABC",
        {"gtin": GTIN, "lot_code": "ABC"},
        id="scanner sends the leading FNC1 as GS after the prefix",
    ),
    pytest.param(
        f"01{GTIN}10ABC{GS}{GS}17261231",
        {"gtin": GTIN, "lot_code": "ABC", "expiry_date": date(2026, 12, 31)},
        id="doubled GS",
    ),
    pytest.param(
        f"01{GTIN}{GS}17261231",
        {"gtin": GTIN, "expiry_date": date(2026, 12, 31)},
        id="GS after a fixed-length element is tolerated",
    ),
    pytest.param(
        f"(01){GTIN}(17)261231(10)ABC",
        {"gtin": GTIN, "expiry_date": date(2026, 12, 31), "lot_code": "ABC"},
        id="human-readable with parentheses",
    ),
    pytest.param(
        f" (01) {GTIN} (17) 261231 (10) ABC ",
        {"gtin": GTIN, "expiry_date": date(2026, 12, 31), "lot_code": "ABC"},
        id="human-readable typed with spaces",
    ),
    pytest.param(
        f"(01){GTIN}(10)10D9T",
        {"gtin": GTIN, "lot_code": "10D9T"},
        id="human-readable lot starting with digits that look like AI 10",
    ),
    pytest.param(
        f"01{GTIN}1010D9T{GS}1726123121SN1",
        {"gtin": GTIN, "lot_code": "10D9T", "expiry_date": date(2026, 12, 31), "serial": "SN1"},
        id="GS-separated lot starting with digits that look like AI 10",
    ),
    pytest.param(
        f"01{GTIN}1727100110{'L' * 20}",
        {"gtin": GTIN, "expiry_date": date(2027, 10, 1), "lot_code": "L" * 20},
        id="lot of exactly 20 characters",
    ),
    pytest.param(
        "(10)AB-12/3.4_x",
        {"lot_code": "AB-12/3.4_x"},
        id="lot with GS1 punctuation",
    ),
    pytest.param(
        f"01{GTIN}1727020010ABC",
        {"gtin": GTIN, "expiry_date": date(2027, 2, 28), "lot_code": "ABC"},
        id="day 00 in February",
    ),
    pytest.param(
        f"01{GTIN}1728020010ABC",
        {"gtin": GTIN, "expiry_date": date(2028, 2, 29), "lot_code": "ABC"},
        id="day 00 in February of a leap year",
    ),
    pytest.param(
        "(11)250101(13)250102(15)260630(17)261231",
        {
            "production_date": date(2025, 1, 1),
            "packaging_date": date(2025, 1, 2),
            "best_before_date": date(2026, 6, 30),
            "expiry_date": date(2026, 12, 31),
        },
        id="all four dates",
    ),
    # Holds until 2048: the sliding window reaches 49 years back and 50 ahead.
    pytest.param(
        "(11)991231(17)500101",
        {"production_date": date(1999, 12, 31), "expiry_date": date(2050, 1, 1)},
        id="century follows the GS1 sliding window",
    ),
    pytest.param(
        f"00{SSCC}37120",
        {"sscc": SSCC, "count": 120},
        id="SSCC and count",
    ),
    pytest.param(
        f"]C100{SSCC}02{GTIN}3724{GS}10LOT7",
        {"sscc": SSCC, "count": 24, "lot_code": "LOT7"},
        id="logistic label with AI 02 ignored",
    ),
    pytest.param(
        "(37)99999999",
        {"count": 99_999_999},
        id="count of 8 digits",
    ),
    pytest.param(
        f"(01){GTIN}(21)SN-0001",
        {"gtin": GTIN, "serial": "SN-0001"},
        id="serial number",
    ),
    pytest.param(
        f"(01){GTIN}(3103)000750(10)ABC(400)PO77(91)X1",
        {"gtin": GTIN, "lot_code": "ABC"},
        id="human-readable with other AIs ignored",
    ),
    pytest.param(
        f"01{GTIN}3103000750400PO77{GS}10ABC{GS}91X1",
        {"gtin": GTIN, "lot_code": "ABC"},
        id="GS-separated with other AIs ignored",
    ),
    pytest.param(
        f"(10)ABC(01){GTIN}(10)ABC",
        {"gtin": GTIN, "lot_code": "ABC"},
        id="repeated AI with the same value",
    ),
    pytest.param(
        "010703206980498815210526100329",
        {"gtin": "07032069804988", "best_before_date": date(2021, 5, 26), "lot_code": "0329"},
        id="another GTIN with lot made of digits only",
    ),
]

UNREADABLE = [
    pytest.param("", "barcode", id="empty string"),
    pytest.param("   ", "barcode", id="only whitespace"),
    pytest.param(GS, "barcode", id="only a GS"),
    pytest.param("]C1", "barcode", id="symbology identifier without data"),
    pytest.param("]", "barcode", id="bare bracket"),
    pytest.param("]E09501101530003", "barcode", id="EAN-13 symbology is not a GS1 element string"),
    pytest.param("hello world", "barcode", id="non-GS1 junk"),
    pytest.param("(1A)X", "barcode", id="human-readable junk in parentheses"),
    pytest.param(f"01{GTIN}231234", "barcode", id="unknown AI in scanned data"),
    pytest.param(f"01{GTIN}1", "barcode", id="data cut off inside the next AI"),
    pytest.param(f"(01){GTIN}(23)1234", "(23)", id="unknown AI in human-readable text"),
    pytest.param("0109501101530004", "(01)", id="wrong GTIN check digit"),
    pytest.param("(01)09501101530004", "(01)", id="wrong GTIN check digit in human-readable"),
    pytest.param("00095011010000000002", "(00)", id="wrong SSCC check digit"),
    pytest.param("01095011015300", "(01)", id="truncated GTIN"),
    pytest.param(f"(01){GTIN}1", "(01)", id="GTIN one digit too long in human-readable"),
    pytest.param(f"(01){GTIN} xyz", "(01)", id="junk after a GTIN in human-readable"),
    pytest.param(f"01{GTIN}17261", "(17)", id="truncated expiry date"),
    pytest.param(f"01{GTIN}1726134110ABC", "(17)", id="month 13"),
    pytest.param("(17)261341", "(17)", id="month 13 in human-readable"),
    pytest.param("(11)260015", "(11)", id="month 00"),
    pytest.param("(15)260431", "(15)", id="April 31"),
    pytest.param("(13)270229", "(13)", id="February 29 outside a leap year"),
    pytest.param(f"(01){GTIN}(17)", "(17)", id="AI without a value in human-readable"),
    pytest.param(f"01{GTIN}10{'A' * 21}", "(10)", id="lot of 21 characters at the end"),
    pytest.param(f"10{'A' * 21}{GS}17261231", "(10)", id="lot of 21 characters before a GS"),
    pytest.param(
        "10ABCDEFGHIJKLMNOPQRST17261231", "(10)", id="20-character lot running into digits"
    ),
    pytest.param(f"(10){'A' * 21}", "(10)", id="lot of 21 characters in human-readable"),
    pytest.param("10AB#CD", "(10)", id="lot with a character outside the GS1 set"),
    pytest.param("(10)ABC(10)DEF", "(10)", id="two different lots"),
    pytest.param("(37)123456789", "(37)", id="count of 9 digits"),
    pytest.param("37", "(37)", id="AI without a value in scanned data"),
]


@pytest.mark.parametrize(("barcode", "fields"), READABLE)
def test_a_readable_scan_fills_exactly_the_expected_fields(
    barcode: str, fields: dict[str, Any]
) -> None:
    assert parse_gs1(barcode) == Gs1Scan(raw=barcode, **fields)


@pytest.mark.parametrize(("barcode", "element"), UNREADABLE)
def test_an_unreadable_scan_names_the_element_to_check(barcode: str, element: str) -> None:
    with pytest.raises(Gs1Error) as caught:
        parse_gs1(barcode)
    assert caught.value.element == element
    assert str(caught.value)
    if element != "barcode":
        assert element in str(caught.value)


@pytest.mark.parametrize("wrong_digit", sorted(set("0123456789") - {"3"}))
def test_every_wrong_gtin_check_digit_is_rejected(wrong_digit: str) -> None:
    with pytest.raises(Gs1Error, match="must be 3") as caught:
        parse_gs1(f"01{GTIN[:-1]}{wrong_digit}")
    assert caught.value.element == "(01)"


@pytest.mark.parametrize(
    ("barcode", "human_readable"),
    [
        pytest.param(
            f"(01){GTIN}(17)261231(10)ABC",
            f"(01){GTIN}(17)261231(10)ABC",
            id="human-readable round trip",
        ),
        pytest.param(
            f"]C110ABC{GS}21SN1{GS}3712{GS}00{SSCC}01{GTIN}11250101",
            f"(00){SSCC}(01){GTIN}(11)250101(10)ABC(21)SN1(37)12",
            id="fixed-length AIs first, then variable ones",
        ),
        pytest.param(
            f"01{GTIN}1727020010ABC",
            f"(01){GTIN}(17)270228(10)ABC",
            id="day 00 comes back as the last day",
        ),
    ],
)
def test_as_human_readable_puts_each_ai_in_parentheses(barcode: str, human_readable: str) -> None:
    assert parse_gs1(barcode).as_human_readable() == human_readable


@pytest.mark.parametrize(
    ("yymm00", "last_day"),
    [
        ("270200", date(2027, 2, 28)),
        ("280200", date(2028, 2, 29)),
        ("260400", date(2026, 4, 30)),
        ("261200", date(2026, 12, 31)),
    ],
)
def test_day_00_means_the_last_day_of_the_month(yymm00: str, last_day: date) -> None:
    assert parse_gs1(f"(17){yymm00}").expiry_date == last_day


def test_a_lot_starting_with_digits_is_not_read_as_a_new_ai() -> None:
    scan = parse_gs1(f"]C101{GTIN}1010D9T{GS}17261231")
    assert scan.lot_code == "10D9T"
    assert scan.expiry_date == date(2026, 12, 31)


def test_a_too_long_lot_says_how_long_it_is_and_the_limit() -> None:
    with pytest.raises(Gs1Error, match="21 characters long; at most 20") as caught:
        parse_gs1(f"01{GTIN}10{'A' * 21}")
    assert caught.value.element == "(10)"


def test_raw_keeps_the_scan_exactly_as_received() -> None:
    barcode = f"]C101{GTIN}10ABC{GS}"
    assert parse_gs1(barcode).raw == barcode


def test_gs1_error_is_a_value_error() -> None:
    assert issubclass(Gs1Error, ValueError)
    error = Gs1Error("(17)", "Expiry date (17) '261341' is not a valid date (YYMMDD).")
    assert error.element == "(17)"
    assert str(error) == "Expiry date (17) '261341' is not a valid date (YYMMDD)."
