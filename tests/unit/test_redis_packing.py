"""The hiredis-packed asyncio connection sends exactly what redis-py's own packer sends."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection

from vigil.features.redis_state import _HiredisPackedConnection


@pytest.mark.parametrize(
    "args",
    [
        ("EVALSHA", "ab12", 2, "vigil:c:1:tx", "vigil:t:9:tx", 1538352000000000, 7, "57.16"),
        ("SCRIPT LOAD", "return 1"),
        ("SET", "k", 0.1, b"\x00bytes", -3),
    ],
)
def test_packing_matches_redis_py(args: tuple[object, ...]) -> None:
    ours = b"".join(_HiredisPackedConnection().pack_command(*args))
    assert ours == b"".join(Connection().pack_command(*args))
