"""A frozen encoder: images in [0, 1] → one feature map per tapped layer.

The wrapped timm model is built with no classifier, loaded strictly (``weights.py``), put in eval mode and
stripped of gradients. ``train()`` cannot switch it back: a segmenter's ``.train()`` leaves the encoder's
BatchNorm statistics and dropout alone, and since no parameter requires a gradient, no optimizer step moves it.
Normalisation and the resize/pad that patch-14 models need (see ``registry`` for the policy) happen inside, as
does ``fit="card"``: the model card's resize (or none) and ``size``-pixel windows stitched back into one map.
Taps come from timm's ``forward_intermediates`` (ViT tokens reshaped to a grid, prefix tokens dropped); a
hybrid's CNN stages are captured with forward hooks on its stem, which ``forward_intermediates`` does not expose.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cellprobe.encoders import weights as W
from cellprobe.encoders.identity import EncoderIdentity
from cellprobe.encoders.necks import PYRAMID_STRIDES
from cellprobe.encoders.registry import FITS, INPUT_SCALE_RANGE, TOKEN_STRIDE, EncoderSpec, Fit, get_spec
from cellprobe.errors import InputError


def create_timm_model(spec: EncoderSpec, num_classes: int = 0, device: str | torch.device = "cpu") -> nn.Module:
    """The bare timm architecture of ``spec`` with random weights (``device="meta"``: shapes only, no memory)."""
    import timm

    with torch.device(device):
        return timm.create_model(spec.arch, pretrained=False, **spec.model_kwargs(num_classes))


def tap_names(spec: EncoderSpec, model: nn.Module, taps: Sequence[int]) -> list[str]:
    """Module names of the taps (``blocks.5``, ``stages.2``, ``patch_embed.backbone.stages.0``)."""
    return [_tap_info(spec, model, t)["module"] for t in taps]


def _tap_levels(spec: EncoderSpec, model: nn.Module) -> list[dict]:
    levels = list(model.feature_info)
    if spec.family == "hybrid":
        stem = [dict(info, module=f"patch_embed.backbone.{info['module']}")
                for info in model.patch_embed.backbone.feature_info]
        levels = stem[: spec.hybrid_cnn_levels] + levels
    return levels


def _tap_info(spec: EncoderSpec, model: nn.Module, tap: int) -> dict:
    return _tap_levels(spec, model)[tap]


class FrozenEncoder(nn.Module):
    """Frozen feature extractor. ``forward(images (B,3,H,W) in [0,1]) -> [tap maps (B,C_i,h_i,w_i)]``.

    Attributes: ``spec``, ``taps``, ``tap_names``, ``tap_channels``, ``tap_strides`` (input pixels per feature
    cell), ``fit``, ``input_scale``, ``weights_origin`` and ``weights_digest`` (sha256 of the weights file, or of
    the state dict for random weights; computed on first access).

    ``input_scale`` magnifies the images (bilinear) before the encoder sees them: an ImageNet model at 2× sees
    a 40× nucleus at the size of its training objects and its stride-4 stage resolves 2 image pixels; tap
    strides are divided by it, so the neck still lands every tap on the decoder's grid.
    """

    def __init__(self, spec: EncoderSpec, model: nn.Module, taps: Sequence[int], fit: Fit,
                 weights: W.ResolvedWeights, input_scale: float = 1.0) -> None:
        super().__init__()
        if fit == "card" and spec.card is None:
            raise ValueError(f"encoder '{spec.name}' has no model-card fit")
        self.spec = spec
        self.model = model
        self.taps = tuple(int(t) for t in taps)
        self.fit = fit
        self.input_scale = float(input_scale)
        self.weights_origin = weights.origin
        self._weights = weights
        levels = _tap_levels(spec, model)
        self.tap_names = [levels[t]["module"] for t in self.taps]
        self.tap_channels = tuple(int(levels[t]["num_chs"]) for t in self.taps)
        self.tap_strides = tuple(self._input_stride(int(levels[t]["reduction"])) / self.input_scale
                                 for t in self.taps)
        device = next(model.parameters()).device
        self.register_buffer("mean", torch.tensor(spec.mean, device=device).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std, device=device).view(1, 3, 1, 1), persistent=False)
        self._cnn_taps = [t for t in self.taps if spec.family == "hybrid" and t < spec.hybrid_cnn_levels]
        self._block_taps = [t - spec.hybrid_cnn_levels if spec.family == "hybrid" else t
                            for t in self.taps if t not in self._cnn_taps]
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.train(False)

    def _input_stride(self, reduction: int) -> float:
        """Pixels of the (magnified) input per cell of a tap: a token of a resized patch-14 model covers 16, one
        of a card-resized model ``patch / card.scale`` (UNI's card, 256 → 224 px: 16 · 256 / 224 ≈ 18.3)."""
        if self.fit == "resize" and self.spec.family in ("vit", "hybrid") and reduction == self.spec.patch_size:
            return TOKEN_STRIDE
        if self.fit == "card" and self.spec.card is not None and self.spec.card.resize:
            return reduction / self.spec.card.scale
        return reduction

    def train(self, mode: bool = True) -> FrozenEncoder:
        """Stays in eval mode whatever ``mode`` is, so BatchNorm statistics and dropout never change."""
        return super().train(False)

    @cached_property
    def weights_digest(self) -> str:
        if self._weights.path is not None:
            return W.file_sha256(self._weights.path)
        return W.state_dict_sha256(self.model)

    @property
    def identity(self) -> EncoderIdentity:
        """What this encoder's features depend on (:mod:`cellprobe.encoders.identity`)."""
        return EncoderIdentity(self.spec.name, self.spec.family, self.weights_digest, tuple(int(t) for t in self.taps),
                               str(self.fit), float(self.input_scale), tuple(int(c) for c in self.tap_channels),
                               tuple(float(s) for s in self.tap_strides))

    def feature_shapes(self, height: int, width: int) -> list[tuple[int, int, int]]:
        """(C, h, w) of every tap for an input of ``height`` × ``width``, by a shape-only (meta) dry run."""
        meta = create_timm_model(self.spec, device="meta")
        shadow = FrozenEncoder(self.spec, meta, self.taps, self.fit, self._weights, self.input_scale)
        out = shadow(torch.empty(1, 3, height, width, device="meta"))
        return [tuple(int(s) for s in o.shape[1:]) for o in out]

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise ValueError(f"expected float images (B,3,H,W) in [0,1], got {tuple(images.shape)} {images.dtype}")
        x = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        if self.input_scale != 1.0:
            size = (round(x.shape[-2] * self.input_scale), round(x.shape[-1] * self.input_scale))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=self.input_scale < 1)
        if self.fit == "card":
            return self._extract_windows(self._card_input(x))
        x = self._fit_input(x)
        return self._extract(x)

    def _card_input(self, x: torch.Tensor) -> torch.Tensor:
        """The card's resize (exact: sides first padded so that ``side · size / tile`` is a whole number), then
        zero padding (the mean colour) to a multiple of the patch and to at least one ``size``-pixel window."""
        card, patch = self.spec.card, self.spec.patch_size
        if card.resize:
            grain = card.tile // math.gcd(card.tile, card.size)
            x = _pad_to(x, grain, 0)
            size = (x.shape[-2] * card.size // card.tile, x.shape[-1] * card.size // card.tile)
            x = F.interpolate(x, size=size, mode=card.interpolation, align_corners=False, antialias=True)
        return _pad_to(x, patch, card.size)

    def _extract_windows(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Taps of ``x`` computed on ``card.size``-pixel windows at patch-grid offsets, stitched into one map per
        tap (cells seen by several windows get their mean); one window when ``x`` is no larger than that."""
        window, patch = self.spec.card.size, self.spec.patch_size
        rows, cols = _window_offsets(x.shape[-2], window, patch), _window_offsets(x.shape[-1], window, patch)
        if len(rows) == len(cols) == 1:
            return self._extract(x)
        batch = x.shape[0]
        tiles = torch.cat([x[..., r: r + window, c: c + window] for r in rows for c in cols])
        stitched = []
        for tap in self._extract(tiles):
            cell = window // tap.shape[-1]  # input pixels per cell of this tap (the patch, for ViT blocks)
            total = tap.new_zeros(batch, tap.shape[1], x.shape[-2] // cell, x.shape[-1] // cell)
            count = tap.new_zeros(1, 1, *total.shape[-2:])
            h, w = tap.shape[-2:]
            for i, (r, c) in enumerate((r, c) for r in rows for c in cols):
                total[..., r // cell: r // cell + h, c // cell: c // cell + w] += tap[i * batch: (i + 1) * batch]
                count[..., r // cell: r // cell + h, c // cell: c // cell + w] += 1
            stitched.append(total / count)
        return stitched

    def _fit_input(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        patch = self.spec.patch_size
        if self.spec.family in ("cnn", "swin") or self.fit == "native":
            return x
        if self.fit == "resize":
            if height % TOKEN_STRIDE or width % TOKEN_STRIDE:
                raise ValueError(f"fit='resize' needs sides divisible by {TOKEN_STRIDE}, got {height}x{width}")
            size = (height // TOKEN_STRIDE * patch, width // TOKEN_STRIDE * patch)
            if size == (height, width):
                return x
            return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        pad_h, pad_w = (-height) % patch, (-width) % patch  # fit == "pad": zeros = the mean colour
        return F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x

    def _extract(self, x: torch.Tensor) -> list[torch.Tensor]:
        captured: dict[int, torch.Tensor] = {}
        handles = []
        if self._cnn_taps:
            stem = self.model.patch_embed.backbone
            for tap in self._cnn_taps:
                module = stem.get_submodule(stem.feature_info[tap]["module"])
                handles.append(module.register_forward_hook(
                    lambda _m, _i, out, tap=tap: captured.__setitem__(tap, out)))
        try:
            blocks = self.model.forward_intermediates(
                x, indices=self._block_taps, norm=self.spec.tap_norm, stop_early=True, output_fmt="NCHW",
                intermediates_only=True) if self._block_taps else []
            if not self._block_taps:  # hybrid with CNN taps only: run the stem alone
                self.model.patch_embed(x)
        finally:
            for handle in handles:
                handle.remove()
        by_tap = dict(zip((t for t in self.taps if t not in self._cnn_taps), blocks, strict=True))
        by_tap.update(captured)
        return [by_tap[t] for t in self.taps]


def _pad_to(x: torch.Tensor, multiple: int, minimum: int) -> torch.Tensor:
    """Zero-pad the bottom/right of ``x`` to sides that are multiples of ``multiple`` and at least ``minimum``."""
    pad_h = max(minimum, -(-x.shape[-2] // multiple) * multiple) - x.shape[-2]
    pad_w = max(minimum, -(-x.shape[-1] // multiple) * multiple) - x.shape[-1]
    return F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x


def _window_offsets(length: int, window: int, step: int) -> list[int]:
    """Starts of the fewest ``window``-long windows covering ``length`` (both multiples of ``step``), evenly
    spread on multiples of ``step``, the first at 0 and the last ending at ``length``."""
    if length <= window:
        return [0]
    n = -(-(length - window) // window) + 1
    span = (length - window) // step
    return [round(i * span / (n - 1)) * step for i in range(n)]


def taps_problem(spec: EncoderSpec, taps: Sequence[int], model: nn.Module | None = None) -> str | None:
    """Why ``taps`` cannot be the encoder's tapped levels (None: they can): one distinct level per level of the
    decoder's pyramid, in increasing order. ``model``: the built architecture (else a bare one, without memory)."""
    levels = len(_tap_levels(spec, model if model is not None else create_timm_model(spec, device="meta")))
    bad = [t for t in taps if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < levels]
    if len(taps) != len(PYRAMID_STRIDES) or bad or len(set(taps)) != len(taps) or list(taps) != sorted(taps):
        return (f"encoder '{spec.name}' takes {len(PYRAMID_STRIDES)} distinct increasing indices in 0..{levels - 1} "
                f"(one per level of the decoder's pyramid), got {list(taps)}")
    return None


def build_encoder(name: str | EncoderSpec, weights: str | Path = "pretrained", taps: Sequence[int] | None = None,
                  *, fit: Fit | None = None, input_scale: float = 1.0, seed: int = 0,
                  device: str | torch.device = "cpu") -> FrozenEncoder:
    """Build a frozen encoder by registry name (or spec).

    ``weights``: ``"pretrained"`` (hub or package, see the registry), ``"random"`` (seeded timm initialisation:
    the baseline that shows what pretraining adds) or a local file. ``taps`` overrides the default tapped
    layers (timm ``forward_intermediates`` indices, see ``registry``); ``fit`` overrides the input policy
    (``native``, ``resize``, ``pad``, or ``card`` where the spec has a model-card fit: ``spec.fits``; None: the
    spec's default); ``input_scale`` magnifies the input first (see :class:`FrozenEncoder`).
    """
    spec = get_spec(name) if isinstance(name, str) else name
    fit = fit or spec.fit
    if fit not in FITS:
        raise InputError(None, f"encoder '{spec.name}': fit must be one of {', '.join(spec.fits)}, got '{fit}'")
    if fit not in spec.fits:
        why = ("has no model-card fit" if fit == "card" else
               f"takes images as they are (a {spec.family} encoder): fit '{fit}' would change nothing")
        raise InputError(None, f"encoder '{spec.name}' {why} (its fits: {', '.join(spec.fits)})")
    low, high = INPUT_SCALE_RANGE
    if not (isinstance(input_scale, (int, float)) and low <= input_scale <= high):
        raise InputError(None, f"encoder '{spec.name}': input_scale must be between {low} and {high}, "
                               f"got {input_scale}")
    if str(device) == "meta" and weights != "random":
        raise ValueError("the meta device holds no values: build it with weights='random'")
    resolved = W.resolve_weights(spec, weights)
    torch.manual_seed(seed)
    model = create_timm_model(spec, device="meta" if str(device) == "meta" else "cpu")
    if resolved.path is not None:
        W.load_strict(model, spec, W.read_checkpoint(resolved.path), resolved.origin)
    taps = tuple(spec.default_taps if taps is None else taps)
    problem = taps_problem(spec, taps, model)
    if problem is not None:
        raise InputError(None, f"config key 'encoder.taps': {problem}")
    encoder = FrozenEncoder(spec, model, taps, fit, resolved, input_scale)
    return encoder if str(device) in ("cpu", "meta") else encoder.to(device)

