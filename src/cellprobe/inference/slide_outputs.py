"""The whole-slide outputs, written as they are produced: Parquet parts while tiles finish, then at the end
``cells.parquet`` (the parts' row groups streamed into one file), ``cells.geojson.gz`` (streamed from it) and
``overview.png``. Nothing here holds more than one part (or one row group) of nuclei at a time.

Columns of cells.parquet: ``id`` (1.., in tile order), ``uuid`` (the GeoJSON feature id), ``tile``,
``x_px``/``y_px`` (centroid, level-0 px), ``x_um``/``y_um``, ``area_um2``, ``class``, ``class_id``,
``prob_<class>`` per class, ``outline`` (closed ring of [x, y] level-0 vertices).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cellprobe.inference.export import class_colour
from cellprobe.inference.slide_cells import TileCells

CELLS = "cells.parquet"
GEOJSON = "cells.geojson.gz"
SUMMARY = "summary.json"
OVERVIEW = "overview.png"
#: decimals kept in GeoJSON coordinates (level-0 px: 0.01 px is far below any scanner's resolution)
COORD_DECIMALS = 2
#: nuclei per Arrow batch when streaming cells.parquet into the GeoJSON and the overview
READ_BATCH = 10_000
#: Parquet compression of the parts and of cells.parquet
COMPRESSION = "zstd"


def prob_column(name: str) -> str:
    return f"prob_{name}"


def cell_schema(class_names: Sequence[str]) -> pa.Schema:
    return pa.schema([
        ("id", pa.int64()), ("uuid", pa.string()), ("tile", pa.int32()),
        ("x_px", pa.float64()), ("y_px", pa.float64()), ("x_um", pa.float64()), ("y_um", pa.float64()),
        ("area_um2", pa.float32()), ("class", pa.string()), ("class_id", pa.int16()),
        *[(prob_column(n), pa.float32()) for n in class_names],
        ("outline", pa.list_(pa.list_(pa.float32(), 2))),
    ])


def cells_table(batch: Sequence[TileCells], first_id: int, mpp: float, class_names: Sequence[str]) -> pa.Table:
    """The nuclei of consecutive tiles as one table, ids from ``first_id``."""
    schema = cell_schema(class_names)
    batch = [t for t in batch if len(t)]
    n = sum(len(t) for t in batch)
    if n == 0:
        return schema.empty_table()
    cat = np.concatenate
    x, y = cat([t.x for t in batch]), cat([t.y for t in batch])
    cls = cat([t.cls for t in batch]).astype(np.int16)
    probs = np.concatenate([t.probs for t in batch]).reshape(n, len(class_names))
    rings = [r for t in batch for r in t.outline]
    offsets = np.zeros(len(rings) + 1, dtype=np.int32)
    offsets[1:] = np.cumsum([len(r) for r in rings])
    points = pa.FixedSizeListArray.from_arrays(pa.array(cat(rings).ravel(), pa.float32()), 2)
    names = np.asarray(class_names, dtype=object)
    columns: list[Any] = [
        np.arange(first_id, first_id + n, dtype=np.int64), [u for t in batch for u in t.uuid],
        np.repeat([t.tile for t in batch], [len(t) for t in batch]).astype(np.int32),
        x, y, x * mpp, y * mpp, cat([t.area for t in batch]).astype(np.float32), names[cls - 1].tolist(), cls,
        *[probs[:, c] for c in range(len(class_names))],
        pa.ListArray.from_arrays(pa.array(offsets), points),
    ]
    return pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, schema, strict=True)],
                                schema=schema)


def write_part(path: Path, table: pa.Table) -> None:
    """A part file, complete or absent: written beside, then renamed (the journal names it only after)."""
    from cellprobe import atomic

    with atomic.atomic_open(path, "wb") as handle:
        pq.write_table(table, handle, compression=COMPRESSION)


def merge_parts(parts: Sequence[Path], out: Path, schema: pa.Schema) -> int:
    """Stream the parts' row groups, in order, into ``out``; returns the number of nuclei."""
    total = 0
    with pq.ParquetWriter(out, schema, compression=COMPRESSION) as writer:
        for part in parts:
            source = pq.ParquetFile(part)
            for group in range(source.num_row_groups):
                table = source.read_row_group(group)
                if table.num_rows:
                    writer.write_table(table)
                    total += table.num_rows
    return total


def iter_cells(path: Path, columns: Sequence[str] | None = None) -> Iterator[pa.RecordBatch]:
    yield from pq.ParquetFile(path).iter_batches(batch_size=READ_BATCH, columns=columns)


def _feature(row: dict[str, Any], class_names: Sequence[str]) -> dict[str, Any]:
    ring = [[round(float(x), COORD_DECIMALS), round(float(y), COORD_DECIMALS)] for x, y in row["outline"]]
    measurements = {"Area µm^2": round(float(row["area_um2"]), 3)}
    measurements.update({f"Probability: {n}": round(float(row[prob_column(n)]), 4) for n in class_names})
    return {
        "type": "Feature",
        "id": row["uuid"],
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {
            "objectType": "detection",
            "classification": {"name": row["class"], "color": list(class_colour(int(row["class_id"])))},
            "measurements": measurements,
        },
    }


def write_geojson(cells: Path, out: Path, class_names: Sequence[str]) -> None:
    """``cells.geojson.gz``: a FeatureCollection of QuPath detections streamed from cells.parquet (one
    feature per line; gzip without a timestamp, so the same nuclei give the same bytes)."""
    with open(out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(b'{"type": "FeatureCollection", "features": [\n')
        first = True
        for batch in iter_cells(cells):
            for row in batch.to_pylist():
                gz.write((b"" if first else b",\n") + json.dumps(_feature(row, class_names)).encode())
                first = False
        gz.write(b"\n]}\n")


def write_overview(cells: Path, out: Path, thumbnail: np.ndarray, downsample: float, mpp: float) -> None:
    """``overview.png``: the slide's thumbnail with each nucleus a dot of its class colour (its own size
    when the thumbnail is fine enough, one pixel at least)."""
    image = cv2.cvtColor(np.ascontiguousarray(thumbnail), cv2.COLOR_RGB2BGR)
    for batch in iter_cells(cells, ["x_px", "y_px", "area_um2", "class_id"]):
        cols = batch.to_pydict()
        radius = np.sqrt(np.asarray(cols["area_um2"]) / np.pi) / mpp / downsample
        for x, y, r, c in zip(cols["x_px"], cols["y_px"], radius, cols["class_id"], strict=True):
            colour = tuple(int(v) for v in class_colour(int(c))[::-1])
            cv2.circle(image, (int(x / downsample), int(y / downsample)), max(1, round(float(r))), colour, -1)
    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    out.write_bytes(png.tobytes())
