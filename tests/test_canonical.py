"""The one canonical encoding (RFC 8785) and digest that everything hashed goes through."""

from __future__ import annotations

import math

import blake3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlcustody._canonical import canonical_json, digest_json, utc_now
from mlcustody.errors import UsageError


def test_rfc8785_number_examples() -> None:  # RFC 8785 §3.2.2.3
    value = {"numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001, -0.0]}
    assert canonical_json(value) == b'{"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27,0]}'


def test_rfc8785_member_order_is_by_utf16_code_units() -> None:  # RFC 8785 §3.2.3
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    keys = [
        b"\\r",
        b"1",
        "\u0080".encode(),
        "\u00f6".encode(),
        "\u20ac".encode(),
        "\U0001f600".encode(),
        "\ufb33".encode(),
    ]
    encoded = canonical_json(value)
    positions = [encoded.index(b'"' + key + b'"') for key in keys]
    assert positions == sorted(positions)


def test_digest_test_vector() -> None:
    value = {"b": [1, 2.5, "é"], "a": None}
    assert canonical_json(value) == '{"a":null,"b":[1,2.5,"é"]}'.encode()
    assert digest_json(value) == blake3.blake3('{"a":null,"b":[1,2.5,"é"]}'.encode()).hexdigest()
    assert digest_json(value) == "cb48b3c71133a8b9f4f2ee5590440fc193197cb2963b9f8a9c8f07c2b1d91d9a"


@pytest.mark.parametrize("bad", [math.nan, math.inf, 2**60, object()])
def test_values_without_a_portable_encoding_are_refused(bad: object) -> None:
    with pytest.raises(UsageError):
        canonical_json({"x": bad})


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@given(value=st.dictionaries(st.text(max_size=8), _json, max_size=6))
def test_encoding_ignores_insertion_order(value: dict[str, object]) -> None:
    reordered = dict(reversed(list(value.items())))
    assert canonical_json(reordered) == canonical_json(value)


def test_timestamps_are_rfc3339_utc_with_microseconds() -> None:
    stamp = utc_now()
    assert len(stamp) == 27 and stamp.endswith("Z") and stamp[10] == "T"
