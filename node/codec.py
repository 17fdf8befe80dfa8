"""Canonical msgpack encoding with size limits.

Canonical means: the same value always gives the same bytes (maps are written with their keys
sorted, floats are refused, integers use their shortest form), so hashes and signatures over
encodings are stable across nodes.  Decoding is bounded in size, lengths and nesting depth, and
every failure is a typed `DecodeError`.
"""

from __future__ import annotations

from typing import Any

import msgpack

from node.errors import InvalidInput, UsageError

MAX_MESSAGE_BYTES = 1 << 20  # 1 MiB: the frame limit of the transport
MAX_CONTAINER_LEN = 100_000
MAX_DEPTH = 32


class DecodeError(InvalidInput):
    """Bytes that are not a valid, bounded canonical message."""


class EncodeError(UsageError):
    """A value that has no canonical encoding (a float, an unknown type, too deep)."""


_SCALARS = frozenset({type(None), bool, int, str, bytes})


def _sort_key(item: tuple[Any, Any]) -> tuple[str, Any]:
    return (type(item[0]).__name__, item[0])


def _canonical(value: Any, depth: int) -> Any:
    # Exact-type dispatch first: this runs for every value hashed or signed, so it is hot.
    kind = type(value)
    if kind in _SCALARS:
        return value
    if depth > MAX_DEPTH:
        raise EncodeError(f"value nested deeper than {MAX_DEPTH}")
    if kind is dict:
        for k in value:
            if type(k) not in _KEY_TYPES and not isinstance(k, (str, int, bytes)):
                raise EncodeError(f"map key of type {type(k).__name__} has no canonical order")
        try:
            keys = sorted(value)
        except TypeError:  # mixed key types: order by type name, then value
            return {k: _canonical(v, depth + 1) for k, v in sorted(value.items(), key=_sort_key)}
        return {k: _canonical(value[k], depth + 1) for k in keys}
    if kind is list or kind is tuple:
        return [_canonical(v, depth + 1) for v in value]
    if isinstance(value, float):
        raise EncodeError("floats have no canonical encoding here; use integers")
    # Subclasses (IntEnum, StrEnum, OrderedDict...) take the slow, general path.
    if isinstance(value, (bool, int)):
        return int(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, (list, tuple)):
        return [_canonical(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return _canonical(dict(value), depth)
    raise EncodeError(f"cannot encode a {type(value).__name__}")


_KEY_TYPES = frozenset({str, int, bytes})


def pack(value: Any) -> bytes:
    """Encode `value` canonically."""
    data: bytes = msgpack.packb(_canonical(value, 0), use_bin_type=True)
    return data


def _check_depth(value: Any, limit: int) -> None:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise DecodeError(f"message nested deeper than {limit}")
        if isinstance(item, float):
            raise DecodeError("floats are not allowed")
        if isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())


def unpack(data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES, max_len: int = MAX_CONTAINER_LEN) -> Any:
    """Decode one message; raise `DecodeError` for anything malformed or out of bounds."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise DecodeError(f"message of {len(data)} bytes exceeds the limit of {max_bytes}")
    try:
        value = msgpack.unpackb(
            bytes(data),
            raw=False,
            strict_map_key=False,
            use_list=True,
            max_str_len=max_bytes,
            max_bin_len=max_bytes,
            max_array_len=max_len,
            max_map_len=max_len,
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise DecodeError(f"malformed msgpack: {exc}") from exc
    except Exception as exc:  # msgpack raises a few undocumented types on garbage
        raise DecodeError(f"malformed msgpack: {type(exc).__name__}: {exc}") from exc
    _check_depth(value, MAX_DEPTH)
    return value
