"""Near-duplicate faces: 64-bit DCT perceptual hashes (pHash) and an index of the kept ones."""

from __future__ import annotations

import numpy as np

__all__ = ["HashIndex", "hamming_distances", "phash"]


def phash(rgb: np.ndarray) -> str:
    """64-bit DCT perceptual hash (``imagehash.phash``) of a uint8 RGB (H, W, 3) image, as 16 hex digits.

    Raises:
        ImportError: the ``imagehash`` package is missing.
    """
    try:
        import imagehash
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ImportError("dataset preparation needs the 'imagehash' package: pip install imagehash") from exc
    from PIL import Image

    return str(imagehash.phash(Image.fromarray(np.ascontiguousarray(rgb))))


def _hash_int(hex_hash: str) -> int:
    value = int(hex_hash, 16)
    if len(hex_hash) != 16 or value >> 64:
        raise ValueError(f"not a 64-bit hash: {hex_hash!r}")
    return value


def hamming_distances(hashes: np.ndarray, h: int) -> np.ndarray:
    """Bits differing between each of ``hashes`` (uint64 (N,)) and ``h`` -> int64 (N,)."""
    x = np.bitwise_xor(np.asarray(hashes, dtype=np.uint64), np.uint64(h))
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x).astype(np.int64)
    return np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1).astype(np.int64)


class HashIndex:
    """pHashes of every kept face (id, uint64) for near-duplicate lookups (vectorised, grows by doubling)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self._array = np.zeros(256, dtype=np.uint64)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, face_id: str, hex_hash: str) -> None:
        """Add a face; raises ValueError when ``hex_hash`` is not 16 hex digits."""
        value = _hash_int(hex_hash)
        n = len(self.ids)
        if n == len(self._array):
            self._array = np.concatenate([self._array, np.zeros(n, dtype=np.uint64)])
        self._array[n] = np.uint64(value)
        self.ids.append(face_id)

    def truncate(self, n: int) -> None:
        """Forget the faces added after the first ``n`` (a photo that failed half-way)."""
        del self.ids[n:]

    def nearest(self, hex_hash: str) -> tuple[str, int] | None:
        """(id, distance) of the nearest kept face (the oldest among equals), or None when empty."""
        if not self.ids:
            return None
        d = hamming_distances(self._array[: len(self.ids)], _hash_int(hex_hash))
        i = int(np.argmin(d))
        return self.ids[i], int(d[i])
