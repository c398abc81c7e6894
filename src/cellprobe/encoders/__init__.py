"""Frozen encoders: the registry, strict weight loading, multi-level taps, necks and the feature cache.

``list_encoders`` / ``get_spec`` need no torch; ``build_encoder`` and ``FrozenEncoder`` import it lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cellprobe.encoders.registry import EncoderSpec, get_spec, list_encoders

if TYPE_CHECKING:
    from cellprobe.encoders.frozen import FrozenEncoder, build_encoder

__all__ = ["EncoderSpec", "FrozenEncoder", "build_encoder", "get_spec", "list_encoders"]


def __getattr__(name: str) -> Any:
    if name in ("FrozenEncoder", "build_encoder"):
        from cellprobe.encoders import frozen

        return getattr(frozen, name)
    raise AttributeError(name)
