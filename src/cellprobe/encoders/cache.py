"""Feature cache: frozen-encoder taps computed once, stored in float16, memory-mapped, verified, resumable.

One cache folder holds one (encoder, weights digest, taps, input fit, input size, dataset fingerprint, number of
items, dihedral view): a ``manifest.json`` and one ``tap<i>.npy`` per tap of shape (N, C, h, w), float16.
Items are written in chunks; each finished chunk's sha256 goes into the manifest, which is replaced atomically
after the chunk's data is flushed, so a killed extraction resumes at the first unfinished chunk and never trusts
half-written data. Opening checks the manifest's key against the caller's (a mismatch is refused, naming the
fields) and every file's shape and dtype; each chunk's checksum is verified the first time this process reads
it (``verify()`` checks them all at once). Reads are memory-mapped, so a cache larger than memory trains fine.

numpy's ``.npy`` memory maps are used rather than a chunked store (zarr, HDF5) because random access per item,
float16 and append-by-chunk are all the cache needs, and numpy is already a dependency. One writer at a time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cellprobe import atomic
from cellprobe.config import read_json
from cellprobe.data.views import check_view, view_array
from cellprobe.encoders.identity import EncoderIdentity
from cellprobe.errors import InputError, not_a_file

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DTYPE = np.dtype("float16")


@dataclass(frozen=True)
class CacheKey:
    """Everything the cached features depend on. Two runs with equal keys share one cache."""

    encoder: EncoderIdentity
    input_size: tuple[int, int]  # (H, W) of the encoder input, after the view
    dataset_fingerprint: str
    num_items: int
    view: int

    def to_json(self) -> dict[str, Any]:
        """The manifest's key: the encoder fields the features depend on (channels and strides follow from
        them), then the inputs. Laid out flat as before the identity existed, so earlier caches stay valid."""
        e = self.encoder
        data: dict[str, Any] = {"encoder": e.name, "weights_digest": e.weights_digest, "taps": list(e.taps),
                                "fit": e.fit, "input_size": list(self.input_size),
                                "dataset_fingerprint": self.dataset_fingerprint, "num_items": self.num_items,
                                "view": self.view}
        if e.input_scale != 1.0:  # left out at its default: caches written before it existed stay valid
            data["input_scale"] = e.input_scale
        return data

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()


def cache_dir(root: str | Path, key: CacheKey) -> Path:
    """Where ``key``'s cache lives under ``root``: ``<root>/<encoder>/view<v>-<digest[:16]>``."""
    return Path(root) / key.encoder.name / f"view{key.view}-{key.digest()[:16]}"


def dataset_fingerprint(images: Sequence[np.ndarray] | Any) -> str:
    """sha256 over the count, shapes, dtypes and pixels of every image (what the features depend on).

    Accepts a sequence of (H, W, 3) arrays or a dataset whose items have an ``.image`` (the Sample contract).
    """
    digest = hashlib.sha256(f"n={len(images)}".encode())
    for i in range(len(images)):
        image = _image_of(images[i])
        digest.update(f"|{image.shape}|{image.dtype}|".encode())
        digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def _item_name(dataset: Any, i: int) -> str:
    """Item ``i`` named by its file where the dataset can tell it (a PatchDataset's ``sample_file``)."""
    name = getattr(dataset, "sample_file", None)
    return name(i) if callable(name) else f"item[{i}]"


def _image_of(item: Any) -> np.ndarray:
    return np.asarray(item.image if hasattr(item, "image") else item)


def _manifest_problem(manifest: dict[str, Any]) -> str | None:
    """What is wrong with a manifest read back (None: nothing), field by field as ``_create`` writes it: a
    hand-edited or torn one would otherwise be a KeyError, or a chunk taken as done that is not."""
    def count(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool) and x >= 1

    shapes, files, chunks = manifest.get("tap_shapes"), manifest.get("files"), manifest.get("chunks")
    if not (isinstance(shapes, list) and shapes and all(
            isinstance(s, list) and len(s) == 3 and all(count(v) for v in s) for s in shapes)):
        return f"tap_shapes {shapes!r} is not a list of (channels, height, width)"
    if not (isinstance(files, list) and files == [f"tap{i}.npy" for i in range(len(shapes))]):
        return f"files {files!r} are not tap0.npy … tap{len(shapes) - 1}.npy"
    for key in ("chunk_size", "num_chunks"):
        if not count(manifest.get(key)):
            return f"{key} {manifest.get(key)!r} is not an integer >= 1"
    if not isinstance(chunks, dict) or any(
            not (k.isascii() and k.isdigit() and int(k) < manifest["num_chunks"]) or not isinstance(v, str)
            for k, v in chunks.items()):
        return "chunks is not a record of finished chunks (chunk number → checksum)"
    return None


class FeatureCache:
    """One cache folder. ``cache[i]`` → list of float16 arrays (C, h, w), one per tap, for item ``i``."""

    def __init__(self, directory: str | Path, key: CacheKey,
                 tap_shapes: Sequence[tuple[int, int, int]] | None = None, chunk_size: int = 64) -> None:
        """Open the cache in ``directory`` for ``key``; create it if absent and ``tap_shapes`` is given."""
        self.directory = Path(directory)
        self.key = key
        self._readers: list[np.memmap] | None = None
        self._writers: list[np.memmap] | None = None
        self._verified: set[int] = set()
        manifest_path = self.directory / MANIFEST
        if manifest_path.is_file():
            self.manifest = self._load_manifest(manifest_path)
            if tap_shapes is not None and [list(s) for s in tap_shapes] != self.manifest["tap_shapes"]:
                raise InputError(manifest_path, f"cached tap shapes {self.manifest['tap_shapes']} differ from the "
                                                f"encoder's {[list(s) for s in tap_shapes]}")
            self._check_files()
        elif tap_shapes is None:
            raise InputError(manifest_path, "no feature cache here (manifest.json missing)")
        else:
            self.manifest = self._create(tap_shapes, chunk_size)

    # ------------------------------------------------------------------------------------------ manifest
    def _load_manifest(self, path: Path) -> dict[str, Any]:
        manifest = read_json(path, "cache manifest")
        if not isinstance(manifest, dict):
            raise InputError(path, "unreadable cache manifest: a JSON object expected")
        if manifest.get("format") != FORMAT_VERSION:
            raise InputError(path, f"cache format {manifest.get('format')} is not {FORMAT_VERSION}; delete the "
                                   "folder to rebuild it")
        stored, wanted = manifest.get("key", {}), self.key.to_json()
        if not isinstance(stored, dict):
            raise InputError(path, f"unreadable cache manifest: key {stored!r} is not an object")
        diff = [f"{k}: cached {stored.get(k)!r} vs requested {wanted[k]!r}" for k in wanted if stored.get(k) != wanted[k]]
        if diff:
            raise InputError(path, "feature cache was built for different inputs, refusing to reuse it ("
                                   + "; ".join(diff) + ")")
        problem = _manifest_problem(manifest)
        if problem is not None:
            raise InputError(path, f"damaged cache manifest: {problem}; delete the folder to rebuild it")
        return manifest

    def _create(self, tap_shapes: Sequence[tuple[int, int, int]], chunk_size: int) -> dict[str, Any]:
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file, or a link to nothing, on its way
            raise InputError(self.directory, f"cannot make the feature cache folder ({exc.strerror or exc}): "
                                             "something on its way is not a folder; move it") from None
        n = self.key.num_items
        files = []
        for i, shape in enumerate(tap_shapes):
            name = f"tap{i}.npy"
            if (self.directory / name).is_symlink():  # written in place: never through a link out of the cache
                raise InputError(self.directory / name, "is a link, where the feature cache writes its own file; "
                                                        "remove it")
            np.lib.format.open_memmap(self.directory / name, mode="w+", dtype=DTYPE, shape=(n, *shape)).flush()
            files.append(name)
        manifest = {"format": FORMAT_VERSION, "key": self.key.to_json(), "dtype": DTYPE.name,
                    "tap_shapes": [list(s) for s in tap_shapes], "files": files, "chunk_size": int(chunk_size),
                    "num_chunks": -(-n // chunk_size), "chunks": {}}
        atomic.write_json(self.directory / MANIFEST, manifest)
        return manifest

    def _check_files(self) -> None:
        n = self.key.num_items
        for name, shape in zip(self.manifest["files"], self.manifest["tap_shapes"], strict=True):
            path = self.directory / name
            problem = not_a_file(path)
            if problem is not None:  # a pipe would be waited on forever
                raise InputError(path, f"unreadable cached features: {problem}; delete the cache folder to rebuild it")
            try:
                array = np.load(path, mmap_mode="r")
            except (OSError, ValueError, OverflowError, MemoryError) as exc:
                raise InputError(path, f"unreadable cached features ({exc})") from None
            if array.shape != (n, *shape) or array.dtype != DTYPE:
                raise InputError(path, f"cached features have shape {array.shape} {array.dtype}, manifest says "
                                       f"{(n, *shape)} {DTYPE}")

    # ------------------------------------------------------------------------------------------ layout
    @property
    def tap_shapes(self) -> list[tuple[int, int, int]]:
        return [tuple(s) for s in self.manifest["tap_shapes"]]

    @property
    def chunk_size(self) -> int:
        return int(self.manifest["chunk_size"])

    @property
    def num_chunks(self) -> int:
        return int(self.manifest["num_chunks"])

    def chunk_items(self, chunk: int) -> range:
        return range(chunk * self.chunk_size, min((chunk + 1) * self.chunk_size, self.key.num_items))

    def missing_chunks(self) -> list[int]:
        return [c for c in range(self.num_chunks) if str(c) not in self.manifest["chunks"]]

    @property
    def complete(self) -> bool:
        return not self.missing_chunks()

    @property
    def bytes_per_item(self) -> int:
        return sum(int(np.prod(s)) for s in self.tap_shapes) * DTYPE.itemsize

    def __len__(self) -> int:
        return self.key.num_items

    # ------------------------------------------------------------------------------------------ writing
    def write_chunk(self, chunk: int, arrays: Sequence[np.ndarray]) -> None:
        """Store one chunk (one array (n, C, h, w) per tap, exactly float16-representable) and record it."""
        items = self.chunk_items(chunk)
        if len(arrays) != len(self.tap_shapes):
            raise ValueError(f"expected {len(self.tap_shapes)} tap arrays, got {len(arrays)}")
        if self._writers is None:
            self._writers = [np.load(self.directory / f, mmap_mode="r+") for f in self.manifest["files"]]
        for writer, array, shape in zip(self._writers, arrays, self.tap_shapes, strict=True):
            if array.shape != (len(items), *shape) or array.dtype != DTYPE:
                raise ValueError(f"chunk {chunk}: expected {(len(items), *shape)} float16, got {array.shape} "
                                 f"{array.dtype}")
            if not np.isfinite(array).all():  # float16 tops out at 65504: never store a silent inf
                raise ValueError(f"chunk {chunk}: features not finite in float16 (overflow or NaN)")
            writer[items.start: items.stop] = array
            writer.flush()
        self.manifest["chunks"][str(chunk)] = self._checksum([a for a in arrays])
        atomic.write_json(self.directory / MANIFEST, self.manifest)
        self._verified.add(chunk)

    def close(self) -> None:
        """Drop open memory maps (writers first: their data is already flushed)."""
        self._writers = None
        self._readers = None

    # ------------------------------------------------------------------------------------------ reading
    def __getitem__(self, index: int) -> list[np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        chunk = index // self.chunk_size
        if chunk not in self._verified:
            self._verify_chunk(chunk)
        return [np.array(r[index]) for r in self._open_readers()]

    def _open_readers(self) -> list[np.memmap]:
        if self._readers is None:
            self._readers = [np.load(self.directory / f, mmap_mode="r") for f in self.manifest["files"]]
        return self._readers

    def _verify_chunk(self, chunk: int) -> None:
        expected = self.manifest["chunks"].get(str(chunk))
        if expected is None:
            raise InputError(self.directory / MANIFEST, f"chunk {chunk} (items {self.chunk_items(chunk).start}-"
                                                        f"{self.chunk_items(chunk).stop - 1}) was never written: "
                                                        "the cache is incomplete, resume the extraction")
        items = self.chunk_items(chunk)
        actual = self._checksum([r[items.start: items.stop] for r in self._open_readers()])
        if actual != expected:
            raise InputError(self.directory, f"cached features of chunk {chunk} fail their checksum (corrupt); "
                                             "delete the folder to rebuild it")
        self._verified.add(chunk)

    def verify(self) -> None:
        """Check the checksum of every written chunk now (reads the whole cache once)."""
        for chunk in range(self.num_chunks):
            if str(chunk) in self.manifest["chunks"]:
                self._verify_chunk(chunk)

    @staticmethod
    def _checksum(arrays: Sequence[np.ndarray]) -> str:
        digest = hashlib.sha256()
        for array in arrays:
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers: reopen maps instead of pickling data
        state = self.__dict__.copy()
        state["_readers"], state["_writers"] = None, None
        return state


def _check_finite(arrays: Sequence[np.ndarray], items: Sequence[int], dataset: Any) -> None:
    """Features that float16 cannot hold (beyond ±65504, or NaN from the weights) name their first image,
    as input problems: the weights or the feature caching are to change, not the code."""
    for array in arrays:
        bad = ~np.isfinite(array.reshape(len(array), -1)).all(axis=1)
        if bad.any():
            raise InputError(_item_name(dataset, items[int(np.argmax(bad))]),
                             "the encoder's features are not finite in float16 (beyond ±65504, or NaN): check "
                             "its weights, or train with cache_features: false (float32 features)")


def extract_features(encoder: Any, dataset: Any, root: str | Path, views: Sequence[int] = (0,),
                     batch_size: int = 8, chunk_size: int = 64, fingerprint: str | None = None,
                     progress: Callable[[int, int], None] | None = None) -> list[FeatureCache]:
    """Fill (or resume, or reuse) one cache per view for ``dataset`` under ``root``; returns them in order.

    ``dataset``: a sequence of (H, W, 3) uint8 images or of items with ``.image`` (a PatchDataset). All images
    must share one size. ``encoder``: a :class:`~cellprobe.encoders.frozen.FrozenEncoder`; its device is used.
    ``progress(done_chunks, total_chunks)`` is called after each chunk.
    """
    import torch

    n = len(dataset)
    if n == 0:
        raise InputError(None, "cannot cache features of an empty dataset")
    first = _image_of(dataset[0])
    if first.ndim != 3 or first.shape[2] != 3 or first.dtype != np.uint8:
        raise InputError(_item_name(dataset, 0), f"expected an (H, W, 3) uint8 image, got {first.shape} {first.dtype}")
    fingerprint = fingerprint or dataset_fingerprint(dataset)
    device = encoder.mean.device
    caches: list[FeatureCache] = []
    for view in (check_view(v) for v in views):
        height, width = first.shape[:2] if view % 2 == 0 else first.shape[1::-1]
        key = CacheKey(encoder.identity, (int(height), int(width)), fingerprint, n, view)
        where = cache_dir(root, key)
        shapes = None if (where / MANIFEST).is_file() else encoder.feature_shapes(int(height), int(width))
        cache = FeatureCache(where, key, shapes, chunk_size)
        caches.append(cache)
    total = sum(len(c.missing_chunks()) for c in caches)
    done = 0
    for cache in caches:
        for chunk in cache.missing_chunks():
            outputs: list[list[np.ndarray]] = [[] for _ in cache.tap_shapes]
            items = list(cache.chunk_items(chunk))
            for start in range(0, len(items), batch_size):
                batch = []
                for i in items[start: start + batch_size]:
                    image = _image_of(dataset[i])
                    if image.shape != first.shape or image.dtype != np.uint8:
                        raise InputError(_item_name(dataset, i), f"image is {image.shape} {image.dtype}; every image "
                                                                 f"must be {first.shape} uint8 like "
                                                                 f"{_item_name(dataset, 0)}")
                    batch.append(image)
                x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).to(device=device, dtype=torch.float32)
                x = view_array(x / 255.0, cache.key.view).contiguous()
                for out, tap in zip(outputs, encoder(x), strict=True):
                    out.append(tap.float().cpu().numpy().astype(DTYPE))
            arrays = [np.concatenate(o) for o in outputs]
            _check_finite(arrays, items, dataset)
            cache.write_chunk(chunk, arrays)
            done += 1
            if progress is not None:
                progress(done, total)
        cache.close()
    return caches
