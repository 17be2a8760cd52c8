"""Reading Qt resource bundles (``.rcc`` files, format versions 1 to 3) without Qt.

GCompris ships its photographs only inside such bundles. A bundle is big-endian throughout:

- a header: the magic ``qres``, the format version, then the offsets of the *tree*, *data*
  and *names* sections (version 3 adds a 4-byte flags word);
- the tree: fixed-size nodes (14 bytes, plus an 8-byte modification time from version 2),
  node 0 being the root folder. A node holds its name's offset, a 2-byte flags word
  (1 = zlib-compressed, 2 = folder, 4 = zstd-compressed) and then, for a folder, its child
  count and the index of its first child (children are consecutive nodes), for a file its
  locale (4 bytes) and the offset of its data;
- names: a 2-byte length, a 4-byte hash, then the name in UTF-16BE;
- data: each file's bytes after a 4-byte length; a zlib-compressed file starts with its own
  4-byte uncompressed length (Qt's ``qCompress`` format).

The layout is the one Qt documents in its resource compiler's sources; this reader is our own.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from weakloc.errors import WeaklocError

MAGIC = b"qres"
COMPRESSED = 0x01
DIRECTORY = 0x02
COMPRESSED_ZSTD = 0x04


class _Bundle:
    def __init__(self, data: bytes, where: str):
        self.data = data
        self.where = where
        if len(data) < 20 or data[:4] != MAGIC:
            raise WeaklocError(f"{where}: not a Qt resource bundle (no 'qres' header)")
        self.version, self.tree, self.payload, self.names = struct.unpack_from(">IIII", data, 4)
        if not 1 <= self.version <= 3:
            raise WeaklocError(f"{where}: Qt resource format version {self.version} is not supported (1-3)")
        self.node_size = 14 if self.version == 1 else 22

    def _unpack(self, fmt: str, offset: int) -> tuple:
        try:
            return struct.unpack_from(fmt, self.data, offset)
        except struct.error:
            raise WeaklocError(f"{self.where}: truncated Qt resource bundle (offset {offset})") from None

    def name(self, offset: int) -> str:
        (length,) = self._unpack(">H", self.names + offset)
        start = self.names + offset + 6
        raw = self.data[start:start + 2 * length]
        if len(raw) != 2 * length:
            raise WeaklocError(f"{self.where}: truncated Qt resource bundle (a name at offset {offset})")
        return raw.decode("utf-16-be")

    def node(self, index: int) -> tuple[str, int, int, int]:
        """``(name, flags, a, b)``: a folder's (child count, first child), a file's (0, data offset)."""
        at = self.tree + index * self.node_size
        name_offset, flags = self._unpack(">IH", at)
        if flags & DIRECTORY:
            count, first = self._unpack(">II", at + 6)
            return self.name(name_offset) if index else "", flags, count, first
        (data_offset,) = self._unpack(">I", at + 10)
        return self.name(name_offset), flags, 0, data_offset

    def content(self, flags: int, offset: int, path: str) -> bytes:
        (size,) = self._unpack(">I", self.payload + offset)
        start = self.payload + offset + 4
        raw = self.data[start:start + size]
        if len(raw) != size:
            raise WeaklocError(f"{self.where}: truncated Qt resource bundle (file {path})")
        if flags & COMPRESSED_ZSTD:
            raise WeaklocError(f"{self.where}: {path} is zstd-compressed, which this reader does not support")
        if flags & COMPRESSED:
            try:
                return zlib.decompress(raw[4:])
            except zlib.error as exc:
                raise WeaklocError(f"{self.where}: {path}: corrupt compressed entry ({exc})") from None
        return raw


def read_bundle(data: bytes, where: str = "Qt resource bundle") -> dict[str, bytes]:
    """Every file of a bundle: ``{path inside the bundle (folders joined by '/'): bytes}``.

    ``where`` names the bundle in errors. A malformed bundle raises :class:`WeaklocError`.
    """
    bundle = _Bundle(data, where)
    files: dict[str, bytes] = {}
    stack = [(0, "")]
    seen: set[int] = set()
    while stack:
        index, prefix = stack.pop()
        if index in seen:  # a loop in a corrupt tree
            raise WeaklocError(f"{where}: malformed Qt resource tree (node {index} reached twice)")
        seen.add(index)
        name, flags, count, first = bundle.node(index)
        path = f"{prefix}/{name}" if prefix else name
        if flags & DIRECTORY:
            stack.extend((first + k, path) for k in range(count))
        else:
            files[path] = bundle.content(flags, first, path)
    return files


def read_bundle_file(path: str | Path) -> dict[str, bytes]:
    """:func:`read_bundle` of a file on disk."""
    path = Path(path)
    return read_bundle(path.read_bytes(), str(path))


def write_bundle(files: dict[str, bytes], compress: tuple[str, ...] = ()) -> bytes:
    """A format-3 bundle holding ``files`` (paths joined by '/'); those in ``compress`` are zlib-compressed.

    The inverse of :func:`read_bundle`, used to test it and to make small bundles by hand.
    Nodes are laid out breadth-first, so that every folder's children are consecutive.
    """
    tree: dict = {}
    for path, content in files.items():
        node = tree
        parts = path.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = (path, content)
    entries: list[tuple[str, object]] = [("", tree)]  # the nodes in index order
    first_child: dict[int, int] = {}
    i = 0
    while i < len(entries):
        value = entries[i][1]
        if isinstance(value, dict):
            first_child[i] = len(entries)
            entries.extend((key, value[key]) for key in sorted(value))
        i += 1
    names, payload, nodes = bytearray(), bytearray(), bytearray()
    for index, (name, value) in enumerate(entries):
        offset = len(names)
        names.extend(struct.pack(">HI", len(name), 0) + name.encode("utf-16-be"))
        if isinstance(value, dict):
            nodes.extend(struct.pack(">IHII", offset, DIRECTORY, len(value), first_child[index]) + bytes(8))
        else:
            path, content = value
            flags = COMPRESSED if path in compress else 0
            body = struct.pack(">I", len(content)) + zlib.compress(content) if flags else content
            nodes.extend(struct.pack(">IHHHI", offset, flags, 0, 0, len(payload)) + bytes(8))
            payload.extend(struct.pack(">I", len(body)) + body)
    tree_at = 24  # magic, version, three offsets, flags
    data_at = tree_at + len(nodes)
    names_at = data_at + len(payload)
    header = MAGIC + struct.pack(">IIIII", 3, tree_at, data_at, names_at, 0)
    return header + bytes(nodes) + bytes(payload) + bytes(names)
