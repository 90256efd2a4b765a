"""Read a TensorFlow "tensor bundle" checkpoint (``<prefix>.index`` + ``<prefix>.data-*``) without TensorFlow.

Format, as TensorFlow writes it (``tensorflow/core/util/tensor_bundle``):

* ``<prefix>.index`` is a LevelDB-format SSTable. Its entries map a tensor name to a
  serialized ``BundleEntryProto`` (dtype, shape, shard id, byte offset, byte size, crc32c);
  the entry with the empty key holds the ``BundleHeaderProto`` (number of shards, endianness).
* ``<prefix>.data-<shard>-of-<num_shards>`` holds the raw tensor bytes, back to back.

Only what checkpoints of numeric variables need is implemented: no partitioned (sliced)
variables, no string tensors (those are skipped). Every error names the file at fault.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# LevelDB table footer: two block handles padded to 40 bytes, then this magic number.
_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48
_BLOCK_TRAILER_SIZE = 5  # 1 byte compression type + 4 bytes masked crc32c
_NO_COMPRESSION, _SNAPPY_COMPRESSION = 0, 1

# tensorflow/core/framework/types.proto → numpy, little-endian (the bundle header says so).
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),  # DT_FLOAT
    2: np.dtype("<f8"),  # DT_DOUBLE
    3: np.dtype("<i4"),  # DT_INT32
    4: np.dtype("u1"),  # DT_UINT8
    5: np.dtype("<i2"),  # DT_INT16
    6: np.dtype("i1"),  # DT_INT8
    9: np.dtype("<i8"),  # DT_INT64
    10: np.dtype("?"),  # DT_BOOL
    17: np.dtype("<u2"),  # DT_UINT16
    19: np.dtype("<f2"),  # DT_HALF
    22: np.dtype("<u4"),  # DT_UINT32
    23: np.dtype("<u8"),  # DT_UINT64
}
_DT_STRING = 7


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated or not in the expected format; the message names it."""


@dataclass(frozen=True)
class BundleEntry:
    """Where one tensor lives in the data shards (a decoded ``BundleEntryProto``)."""

    name: str
    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int | None
    sliced: bool


def _read_varint(buf: bytes, pos: int, where: str) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; returns (value, position after it)."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise CheckpointError(f"{where}: truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CheckpointError(f"{where}: varint longer than 64 bits")


def _proto_fields(buf: bytes, where: str) -> list[tuple[int, int, int | bytes]]:
    """Split a serialized protobuf message into (field number, wire type, value) triples.

    Varints come back as (unsigned) ints, fixed32/fixed64 as ints, length-delimited as bytes.
    """
    fields: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        tag, pos = _read_varint(buf, pos, where)
        number, wire = tag >> 3, tag & 7
        value: int | bytes
        if wire == 0:
            value, pos = _read_varint(buf, pos, where)
        elif wire == 1:
            value = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wire == 2:
            length, pos = _read_varint(buf, pos, where)
            value = bytes(buf[pos : pos + length])
            if len(value) != length:
                raise CheckpointError(f"{where}: truncated protobuf field {number}")
            pos += length
        elif wire == 5:
            value = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise CheckpointError(f"{where}: unsupported protobuf wire type {wire} (field {number})")
        fields.append((number, wire, value))
    if pos != len(buf):
        raise CheckpointError(f"{where}: truncated protobuf message")
    return fields


def _signed64(value: int) -> int:
    """Reinterpret an unsigned varint as int64 (negative int64 are encoded as 10-byte varints)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _decode_shape(buf: bytes, where: str) -> tuple[int, ...]:
    """``TensorShapeProto``: repeated ``Dim dim = 2`` with ``int64 size = 1``."""
    dims: list[int] = []
    for number, _, value in _proto_fields(buf, where):
        if number == 2:
            size = 0  # proto3 omits zero-valued fields
            for dim_number, _, dim_value in _proto_fields(value, where):  # type: ignore[arg-type]
                if dim_number == 1:
                    size = _signed64(dim_value)  # type: ignore[arg-type]
            dims.append(size)
        elif number == 3 and value:
            raise CheckpointError(f"{where}: tensor of unknown rank")
    return tuple(dims)


def _decode_entry(name: str, buf: bytes, where: str) -> BundleEntry:
    """``BundleEntryProto``: dtype=1, shape=2, shard_id=3, offset=4, size=5, crc32c=6 (fixed32), slices=7; proto3
    omits zero-valued fields (an absent crc32c: None)."""
    where = f"{where} (entry {name!r})"
    fields: dict = {number: value for number, _, value in _proto_fields(buf, where)}
    shape = _decode_shape(fields[2], where) if 2 in fields else ()
    return BundleEntry(name, fields.get(1, 0), shape, fields.get(3, 0), _signed64(fields.get(4, 0)),
                       _signed64(fields.get(5, 0)), fields.get(6), 7 in fields)


def _decode_header(buf: bytes, where: str) -> tuple[int, int]:
    """``BundleHeaderProto``: num_shards=1, endianness=2 (0 little, 1 big). Returns both."""
    fields = {number: value for number, _, value in _proto_fields(buf, f"{where} (header)")}
    return fields.get(1, 1), fields.get(2, 0)  # type: ignore[return-value]


def _make_crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _make_crc32c_table()


def crc32c(data: bytes | memoryview, crc: int = 0) -> int:
    """CRC-32C (Castagnoli), as TensorFlow and LevelDB use it. Pure Python: ~1 s per 3 MB."""
    crc ^= 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _unmask_crc(masked: int) -> int:
    """LevelDB stores crcs "masked" (rotated and offset) so that crcs of crcs stay informative."""
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def snappy_decompress(data: bytes, where: str = "snappy block") -> bytes:
    """Decompress a raw (unframed) Snappy buffer; enough for SSTable blocks, not fast."""
    length, pos = _read_varint(data, 0, where)
    out = bytearray()
    while pos < len(data):
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal; lengths >= 61 are stored in the next 1-4 bytes
            n = tag >> 2
            if n >= 60:
                extra = n - 59
                n = int.from_bytes(data[pos : pos + extra], "little")
                pos += extra
            n += 1
            out += data[pos : pos + n]
            pos += n
            continue
        if kind == 1:
            n = 4 + ((tag >> 2) & 7)
            offset = ((tag >> 5) << 8) | data[pos]
            pos += 1
        else:  # kind 2: a 2-byte offset, kind 3: a 4-byte one
            n, width = (tag >> 2) + 1, 2 if kind == 2 else 4
            offset = int.from_bytes(data[pos : pos + width], "little")
            pos += width
        if offset == 0 or offset > len(out):
            raise CheckpointError(f"{where}: corrupt snappy copy offset {offset}")
        start = len(out) - offset
        for i in range(n):  # byte by byte: copies may overlap their own output
            out.append(out[start + i])
    if len(out) != length:
        raise CheckpointError(f"{where}: snappy output is {len(out)} bytes, header says {length}")
    return bytes(out)


def _read_block(table: bytes, offset: int, size: int, where: str) -> bytes:
    """Return the uncompressed contents of the block at (offset, size), checking its crc."""
    end = offset + size
    if end + _BLOCK_TRAILER_SIZE > len(table):
        raise CheckpointError(f"{where}: block at {offset} runs past the end of the file")
    contents = table[offset:end]
    block_type = table[end]
    stored_crc = struct.unpack_from("<I", table, end + 1)[0]
    # The crc covers the block contents plus the type byte.
    if crc32c(table[offset : end + 1]) != _unmask_crc(stored_crc):
        raise CheckpointError(f"{where}: checksum mismatch in block at offset {offset}")
    if block_type == _NO_COMPRESSION:
        return contents
    if block_type == _SNAPPY_COMPRESSION:
        return snappy_decompress(contents, f"{where} (block at {offset})")
    raise CheckpointError(f"{where}: unknown block compression type {block_type}")


def _block_entries(block: bytes, where: str) -> list[tuple[bytes, bytes]]:
    """Decode a block's prefix-compressed (key, value) entries, in order."""
    if len(block) < 4:
        raise CheckpointError(f"{where}: block too short")
    num_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    data_end = len(block) - 4 - 4 * num_restarts
    if data_end < 0:
        raise CheckpointError(f"{where}: corrupt block restart array")
    entries: list[tuple[bytes, bytes]] = []
    key = b""
    pos = 0
    while pos < data_end:
        shared, pos = _read_varint(block, pos, where)
        unshared, pos = _read_varint(block, pos, where)
        value_len, pos = _read_varint(block, pos, where)
        if shared > len(key) or pos + unshared + value_len > data_end:
            raise CheckpointError(f"{where}: corrupt block entry at {pos}")
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        entries.append((key, block[pos : pos + value_len]))
        pos += value_len
    return entries


def _read_block_handle(buf: bytes, pos: int, where: str) -> tuple[int, int, int]:
    offset, pos = _read_varint(buf, pos, where)
    size, pos = _read_varint(buf, pos, where)
    return offset, size, pos


def read_sstable(path: Path) -> list[tuple[bytes, bytes]]:
    """All (key, value) entries of a LevelDB-format table file, in key order."""
    where = str(path)
    try:
        table = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"{where}: cannot read checkpoint index ({err})") from err
    if len(table) < _FOOTER_SIZE:
        raise CheckpointError(f"{where}: too short to be a checkpoint index")
    footer = table[-_FOOTER_SIZE:]
    if struct.unpack_from("<Q", footer, 40)[0] != _TABLE_MAGIC:
        raise CheckpointError(f"{where}: bad magic number; not a TensorFlow checkpoint index")
    _, _, pos = _read_block_handle(footer, 0, where)  # metaindex: unused by TensorFlow bundles
    index_offset, index_size, _ = _read_block_handle(footer, pos, where)
    entries: list[tuple[bytes, bytes]] = []
    for _, handle in _block_entries(_read_block(table, index_offset, index_size, where), where):
        offset, size, _ = _read_block_handle(handle, 0, where)
        entries.extend(_block_entries(_read_block(table, offset, size, where), where))
    return entries


def read_index(prefix: Path | str) -> tuple[int, dict[str, BundleEntry]]:
    """Parse ``<prefix>.index``: returns (number of data shards, tensor name → entry)."""
    index_path = Path(f"{prefix}.index")
    where = str(index_path)
    num_shards = 1
    entries: dict[str, BundleEntry] = {}
    for key, value in read_sstable(index_path):
        if key == b"":
            num_shards, endianness = _decode_header(value, where)
            if endianness != 0:
                raise CheckpointError(f"{where}: big-endian checkpoints are not supported")
            continue
        name = key.decode("utf-8")
        entries[name] = _decode_entry(name, value, where)
    return num_shards, entries


def read_checkpoint(
    prefix: Path | str,
    names: list[str] | None = None,
    verify_checksums: bool = False,
) -> dict[str, np.ndarray]:
    """Load tensors of a TensorFlow checkpoint as numpy arrays (name → array, native byte order).

    ``prefix`` is what ``tf.train.Saver`` was given: the files are ``<prefix>.index`` and
    ``<prefix>.data-00000-of-00001`` (for a prefix ending in ``/`` the names start with a dot).
    ``names`` restricts loading to those tensors (a missing name raises); by default every
    numeric tensor is loaded and string tensors are skipped. ``verify_checksums`` compares
    each tensor's crc32c (pure Python, about 1 s per 3 MB).
    """
    num_shards, entries = read_index(prefix)
    if names is None:
        wanted = [e for e in entries.values() if e.dtype != _DT_STRING]
    else:
        missing = [n for n in names if n not in entries]
        if missing:
            raise CheckpointError(f"{prefix}.index: no tensors named {missing}")
        wanted = [entries[n] for n in names]
    shards: dict[int, bytes] = {}
    out: dict[str, np.ndarray] = {}
    for entry in wanted:
        if entry.shard_id not in shards:
            shards[entry.shard_id] = _read_shard(prefix, entry.shard_id, num_shards)
        out[entry.name] = _tensor_from_shard(entry, shards[entry.shard_id], prefix, num_shards, verify_checksums)
    return out


def _shard_path(prefix: Path | str, shard_id: int, num_shards: int) -> Path:
    return Path(f"{prefix}.data-{shard_id:05d}-of-{num_shards:05d}")


def _read_shard(prefix: Path | str, shard_id: int, num_shards: int) -> bytes:
    path = _shard_path(prefix, shard_id, num_shards)
    try:
        return path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read checkpoint data shard ({err})") from err


def _tensor_from_shard(
    entry: BundleEntry, shard: bytes, prefix: Path | str, num_shards: int, verify: bool
) -> np.ndarray:
    where = f"{_shard_path(prefix, entry.shard_id, num_shards)} (tensor {entry.name!r})"
    if entry.sliced:
        raise CheckpointError(f"{where}: partitioned (sliced) variables are not supported")
    if entry.dtype not in _DTYPES:
        raise CheckpointError(f"{where}: unsupported dtype enum {entry.dtype}")
    dtype = _DTYPES[entry.dtype]
    count = int(np.prod(entry.shape, dtype=np.int64))
    if entry.size != count * dtype.itemsize or entry.offset + entry.size > len(shard):
        raise CheckpointError(
            f"{where}: {entry.size} bytes at offset {entry.offset} do not hold shape {entry.shape} "
            f"of {dtype} (shard is {len(shard)} bytes)"
        )
    raw = shard[entry.offset : entry.offset + entry.size]
    if verify and entry.crc32c is not None and _unmask_crc(entry.crc32c) != crc32c(raw):
        raise CheckpointError(f"{where}: crc32c mismatch; the checkpoint is corrupt")
    return np.frombuffer(raw, dtype=dtype).reshape(entry.shape).astype(dtype.newbyteorder("="))
