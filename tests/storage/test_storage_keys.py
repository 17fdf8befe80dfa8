"""Key layout properties: integer keys sort numerically, length-prefixed parts never interleave."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.storage.errors import StorageUsageError
from node.storage.keys import U64_MAX, Space, from_u64, lp, prefix_end, split_lp, u64

u64s = st.integers(min_value=0, max_value=U64_MAX)


@given(u64s, u64s)
def test_u64_byte_order_is_numeric_order(a, b):
    assert (u64(a) < u64(b)) == (a < b)
    assert from_u64(u64(a)) == a


@given(st.binary(max_size=300), st.binary(max_size=50))
def test_lp_round_trips(part, rest):
    assert split_lp(lp(part) + rest) == (part, rest)


@given(st.binary(max_size=20), st.binary(max_size=20), u64s)
def test_creator_prefixes_never_capture_another_creator(a, b, index):
    if a != b:
        assert not (lp(b) + u64(index)).startswith(lp(a))


@given(st.binary(min_size=1, max_size=10), st.binary(max_size=10))
def test_prefix_end_bounds_every_extension(prefix, tail):
    end = prefix_end(prefix)
    assert end is None or prefix + tail < end


def test_space_bytes_are_distinct_single_bytes():
    values = [s.value for s in Space]
    assert len(set(values)) == len(values) and all(len(v) == 1 for v in values)


def test_out_of_range_integers_are_refused():
    with pytest.raises(StorageUsageError):
        u64(-1)
    with pytest.raises(StorageUsageError):
        u64(U64_MAX + 1)
    with pytest.raises(StorageUsageError):
        split_lp(b"\x00\x05ab")
