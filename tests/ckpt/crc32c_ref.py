"""crc32c_ref.py - CRC-32C in pure Python (table per byte), written from the
polynomial, as the checkpoint tests' independent oracle."""

_POLY = 0x82F63B78
_TABLE = []
for _b in range(256):
    _c = _b
    for _ in range(8):
        _c = (_c >> 1) ^ _POLY if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    t = _TABLE
    for byte in data:
        c = (c >> 8) ^ t[(c ^ byte) & 0xFF]
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283
