"""The identity of a frozen encoder: what its features depend on, as one typed value.

The run stamp records it, every checkpoint carries it (a checkpoint loads only onto an encoder with the same
identity) and the feature cache keys on it, so the three can never disagree about which encoder is meant.
The weights are identified by their digest, not by how they were named (``pretrained``, a path, ...).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from cellprobe.errors import InputError


@dataclass(frozen=True)
class EncoderIdentity:
    """Registry name and family, sha256 of the weights, tapped levels, input fit and scale, and the channels
    and strides of the taps (what the trainable neck is built for)."""

    name: str
    family: str
    weights_digest: str
    taps: tuple[int, ...]
    fit: str
    input_scale: float
    tap_channels: tuple[int, ...]
    tap_strides: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("taps", "tap_channels", "tap_strides"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_json(cls, data: Any, where: Any = None) -> EncoderIdentity:
        """Read back :meth:`to_json`; anything else is an InputError naming ``where``."""
        names = [f.name for f in fields(cls)]
        if not isinstance(data, dict) or sorted(data) != sorted(names):
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise InputError(where, f"encoder identity must have the keys {names}, got {got}")
        def integer(x: Any) -> bool:
            return isinstance(x, int) and not isinstance(x, bool)

        def number(x: Any) -> bool:
            return (integer(x) or isinstance(x, float)) and math.isfinite(x)

        def many(check: Any) -> Any:
            return lambda x: isinstance(x, list) and bool(x) and all(check(v) for v in x)

        # read as written, never cast: a tap 1.0 or a name 3 was not written by cellprobe
        kinds = {"name": (str, "text"), "family": (str, "text"), "weights_digest": (str, "text"),
                 "fit": (str, "text"), "input_scale": (number, "a number"), "taps": (many(integer), "integers"),
                 "tap_channels": (many(integer), "integers"), "tap_strides": (many(number), "numbers")}
        for key, (kind, what) in kinds.items():
            ok = isinstance(data[key], kind) if isinstance(kind, type) else kind(data[key])
            if not ok:
                raise InputError(where, f"malformed encoder identity: {key} {data[key]!r} is not {what}")
        return cls(name=data["name"], family=data["family"], weights_digest=data["weights_digest"],
                   taps=tuple(data["taps"]), fit=data["fit"], input_scale=float(data["input_scale"]),
                   tap_channels=tuple(data["tap_channels"]), tap_strides=tuple(float(v) for v in data["tap_strides"]))

    def differences(self, other: EncoderIdentity) -> list[str]:
        """``field: self vs other`` for each field that differs."""
        return [f"{f.name}={getattr(self, f.name)!r} vs {getattr(other, f.name)!r}"
                for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]
