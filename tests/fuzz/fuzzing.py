"""What the fuzz modules share: the active profile (see conftest.py) and byte mutations."""

from __future__ import annotations

import os

from hypothesis import settings
from hypothesis import strategies as st

#: The profile conftest.py registered: SYBAR_FUZZ=long selects the long one.
FUZZ = settings.get_profile("sybar-fuzz-long" if os.environ.get("SYBAR_FUZZ", "").lower() == "long"
                            else "sybar-fuzz-ci")


@st.composite
def mutate(draw, seed: bytes, max_ops: int = 4) -> bytes:
    """seed with a few flips, overwrites, deletions, insertions, duplications or a cut."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, max_ops))):
        n = len(data)
        op = draw(st.sampled_from(["flip", "set", "delete", "insert", "dup", "cut", "u32"]))
        at = draw(st.integers(0, max(n - 1, 0)))
        if op == "flip" and n:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and n:
            data[at] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFE, 0xFF]))
        elif op == "delete" and n:
            del data[at:at + draw(st.integers(1, 16))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "dup" and n:
            end = min(n, at + draw(st.integers(1, 64)))
            data[at:at] = data[at:end]
        elif op == "cut":
            del data[at:]
        elif op == "u32" and n >= 4:
            at = min(at, n - 4)
            data[at:at + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff",
                                                    b"\x00\x01\x00\x00", b"\x00\x00\x01\x00"]))
    return bytes(data)


def chunks(data: bytes, sizes: list[int]) -> list[bytes]:
    """data cut at the given sizes (cycled), as TCP might deliver it."""
    out, pos, i = [], 0, 0
    while pos < len(data):
        n = max(1, sizes[i % len(sizes)]) if sizes else len(data)
        out.append(data[pos:pos + n])
        pos += n
        i += 1
    return out
