"""Where the public datasets can be downloaded from, with their sha256 where it is known.

Checksums: the PanNuke, MoNuSeg and CytoDArk0 archives' sha256 are the published/recorded ones of those exact
files (as used by other public loaders of these releases). ``cisca-splits`` holds no data but the split files
published with CISCA (vadori/cytoark at commit 8b9f75e: ``datasets/{pannuke/40x,conic/20x}/256x256/folds.csv``),
pinned by sha256 and size, which the PanNuke and CoNIC readers take as ``split_file``. For Lizard no checksum could be established offline:
its archives are verified by size (when the server states it) and by opening them as zip files, and the
download says so. The CoNIC patch release is a Google Drive folder with no direct file address: it cannot be
fetched here, and ``cellprobe data download conic`` says where to get it instead.

A user catalog (YAML: ``{name: {title, format, files: [{url, filename, sha256, size}], note}}``) can add or
replace entries, e.g. an institutional mirror. Dataset names and file names must be plain file names
(:data:`PLAIN_NAME`): they become folders and files under the download root.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from cellprobe.config import StrictModel, load_yaml, parse_config
from cellprobe.errors import InputError

#: A dataset name or downloaded file name: a plain file name (letters, digits, ``.``, ``_``, ``-``; no path
#: separator, not starting with a dot, so neither ``.`` nor ``..``): it names a folder or file under ``--root``
#: and must not steer the path anywhere else.
PLAIN_NAME = r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$"


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a dataset name (see :data:`PLAIN_NAME`), or None."""
    if re.fullmatch(PLAIN_NAME, name):
        return None
    return (f"dataset name '{name}' is not a plain file name (letters, digits, '.', '_', '-'; no path "
            "separator, no leading dot)")


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be downloaded from (a catalog's address, or ``--mirror``), or None: an http(s)
    address with a host and, where given, a numeric port, told before anything is made or fetched."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises for a port that is not a number in 0..65535)
    except ValueError as exc:
        return f"'{url}' is not a web address ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"'{url}' is not an http(s) address: only those are downloaded"
    if not parts.hostname:
        return f"'{url}' names no host"
    return None


class RemoteFile(StrictModel):
    url: str
    filename: str = Field(pattern=PLAIN_NAME)  # a plain file name: it must not steer the path
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    size: int | None = Field(None, gt=0)
    unpack: bool = True

    @field_validator("url")
    @classmethod
    def _web_address(cls, value: str) -> str:
        problem = url_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class DatasetSource(StrictModel):
    """A downloadable dataset. Every file is verified: by its sha256, else by its size and, for an archive
    (``unpack``), by opening it; a file with neither checksum nor size that is not unpacked could not be
    verified at all, and is refused."""

    title: str
    format: str | None = None  # reader name for cellprobe.data.open_dataset; None: not read directly
    files: list[RemoteFile] = Field(default_factory=list)  # empty: no direct public address
    license: str = ""
    note: str = ""

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str | None) -> str | None:
        from cellprobe.data.formats import READERS

        if value is not None and value not in READERS:
            raise ValueError(f"unknown data format '{value}' (one of: {', '.join(READERS)}; or null)")
        return value

    @field_validator("files")
    @classmethod
    def _distinct_filenames(cls, value: list[RemoteFile]) -> list[RemoteFile]:
        seen: set[str] = set()
        for f in value:
            key = f.filename.casefold()  # also on a case-insensitive file system, one file each
            if key in seen:
                raise ValueError(f"two files named '{f.filename}': each file needs its own filename")
            seen.add(key)
            if f.sha256 is None and f.size is None and not f.unpack:
                raise ValueError(f"file '{f.filename}': nothing would verify it (no sha256, no size, not an "
                                 "archive to open): give its sha256")
        return value


class Catalog(StrictModel):
    datasets: dict[str, DatasetSource]

    @field_validator("datasets")
    @classmethod
    def _plain_names(cls, value: dict[str, DatasetSource]) -> dict[str, DatasetSource]:
        for name in value:
            problem = name_problem(name)
            if problem:
                raise ValueError(problem)
        return value


_TIA = "https://warwick.ac.uk/fac/cross_fac/tia/data"
#: CISCA's repository at the commit whose split files the paper's protocol uses
_CISCA = "https://raw.githubusercontent.com/vadori/cytoark/8b9f75ece3296a8364d3c51e0989d7efc8a680bd"

CATALOG: dict[str, DatasetSource] = {
    "pannuke": DatasetSource(
        title="PanNuke (3 folds, 40×, 19 tissues, 5 classes)", format="pannuke", license="CC BY-NC-SA 4.0",
        files=[
            RemoteFile(url=f"{_TIA}/pannuke/fold_1.zip", filename="fold_1.zip",
                       sha256="6e19ad380300e8ce9480f9ab6a14cc91fa4b6a511609b40e3d70bdf9c881ed0b"),
            RemoteFile(url=f"{_TIA}/pannuke/fold_2.zip", filename="fold_2.zip",
                       sha256="5bc540cc509f64b5f5a274d6e5a245527dbd3e6d3155d43555115c5d54709b07"),
            RemoteFile(url=f"{_TIA}/pannuke/fold_3.zip", filename="fold_3.zip",
                       sha256="c14d372981c42f611ebc80afad01702b89cad8c1b3089daa31931cf5a4b1a39d"),
        ]),
    "monuseg": DatasetSource(
        title="MoNuSeg 2018 (train 30 + test 14 images, 40×, Aperio XML outlines)", format="monuseg",
        license="CC BY-NC-SA 4.0",
        files=[
            RemoteFile(url="https://drive.google.com/uc?export=download&id=1ZgqFJomqQGNnsx7w7QBzQQMVA16lbVCA",
                       filename="monuseg_train.zip",
                       sha256="25d3d3185bb2970b397cafa72eb664c9b4d24294aee382e7e3df9885affce742"),
            RemoteFile(url="https://drive.google.com/uc?export=download&id=1NKkSQ5T0ZNQ8aUhh0a8Dt2YKYCQXIViw",
                       filename="monuseg_test.zip",
                       sha256="13e522387ae8b1bcc0530e13ff9c7b4d91ec74959ef6f6e57747368d7ee6f88a"),
        ],
        note="hosted on Google Drive, which may answer with a confirmation page instead of the file"),
    "cytodark0": DatasetSource(
        title="CytoDArk0 (Nissl-stained brain, 20× 1024² and 40× 2048² images)", format="cytodark0",
        license="CC BY 4.0 (Zenodo record 13694738)",
        files=[RemoteFile(url="https://zenodo.org/records/13694738/files/cytoDArk0.zip", filename="cytoDArk0.zip",
                          sha256="ce4b05675aa5057e277c8d4ab74524307e2402a3703f6bd80643b93ca9b70ff8")]),
    "lizard": DatasetSource(
        title="Lizard (original whole-image release behind CoNIC)", format=None, license="CC BY-NC-SA 4.0",
        files=[RemoteFile(url=f"{_TIA}/lizard/lizard_images1.zip", filename="lizard_images1.zip"),
               RemoteFile(url=f"{_TIA}/lizard/lizard_images2.zip", filename="lizard_images2.zip"),
               RemoteFile(url=f"{_TIA}/lizard/lizard_labels.zip", filename="lizard_labels.zip")],
        note="no checksum known offline: verified by size and zip format only. Its .mat labels are not read "
             "directly; cellprobe reads the CoNIC patch release of the same data (format 'conic')"),
    "conic": DatasetSource(
        title="CoNIC patches of Lizard (4,981 × 256², 20×, 6 classes)", format="conic", license="CC BY-NC-SA 4.0",
        note="no direct download address (a Google Drive folder linked from conic-challenge.grand-challenge.org): "
             "download images.npy, labels.npy and patch_info.csv by hand into ROOT/conic"),
    "cisca-splits": DatasetSource(
        title="CISCA's train/validation/test splits of PanNuke and CoNIC (split files, no images)", format=None,
        license="CC BY-NC-SA 4.0 (vadori/cytoark)",
        files=[RemoteFile(url=f"{_CISCA}/datasets/pannuke/40x/256x256/folds.csv", filename="pannuke_folds.csv",
                          sha256="0fd27ec698b4d0cc1a57ddc5d5486c726cacbd0630c8457d5ddfcefc19919cf7", size=509378,
                          unpack=False),
               RemoteFile(url=f"{_CISCA}/datasets/conic/20x/256x256/folds.csv", filename="conic_folds.csv",
                          sha256="dd77515c3d7b9c82f58eb3c73d6d6c0f6cfa864f22582148362df774e3e8655d", size=279319,
                          unpack=False)],
        note="the split files of the paper's protocol: give ROOT/cisca-splits/pannuke_folds.csv or conic_folds.csv "
             "as the reader option split_file (splits 0 train, 1 validation, 2 test; configs/bench/paper_*.yaml)"),
}


def load_catalog(extra: Path | None = None) -> dict[str, DatasetSource]:
    """The built-in catalog, with the entries of a user YAML catalog added or replacing built-in ones.

    Each entry is validated on its own under its name, so that a name is never read as a dotted config key
    (``lizard.v2`` is one dataset name, not ``lizard: {v2: …}``); every name must be a plain file name."""
    out = dict(CATALOG)
    if extra is not None:
        for key, entry in load_yaml(extra).items():
            if not isinstance(key, str):  # YAML reads null, true, 123 as such: a name must be written as text
                raise InputError(extra, f"dataset name {key!r} is a YAML {type(key).__name__}, not a name: quote it")
            name = check_name(key, extra)
            if not isinstance(entry, dict):
                raise InputError(extra, f"dataset '{name}': must be a mapping (title, format, files, …)")
            try:
                out[name] = parse_config(DatasetSource, entry, extra)
            except InputError as exc:
                raise InputError(extra, f"dataset '{name}': {exc.problem}") from None
    return out


def check_name(name: str, where: str | Path | None = None) -> str:
    """``name`` if it is a plain dataset name, else an InputError naming ``where`` (the catalog file)."""
    problem = name_problem(name)
    if problem:
        raise InputError(where, problem)
    return name


def get_source(name: str, extra: Path | None = None) -> DatasetSource:
    """The catalog entry ``name`` (built in, or from the user catalog ``extra``)."""
    check_name(name, extra)
    catalog = load_catalog(extra)
    if name not in catalog:
        raise InputError(extra, f"no dataset '{name}' in the catalog (have: {', '.join(sorted(catalog))})")
    return catalog[name]
