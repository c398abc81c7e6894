"""Training augmentation, applied consistently to the image, the instance map and the class map.

Geometry (flips/90° turns, elastic deformation), blur, noise and colour jitter are albumentations transforms;
label maps go through nearest-neighbour interpolation only, so every output id is an input id (ids can
disappear at the border or under deformation, never be invented or blended), and out-of-image pixels are
background (image: white, like slide background).

Written by hand, and only this: the *stain perturbation* (Tellez et al. 2018: per-stain scale and shift of the
concentrations). albumentations' ``HEStain`` re-colours with H&E stain matrices but has no single-stain Nissl
(cresyl violet) space and no per-stain scale/shift in skimage's Ruifrok-Johnston HED space; the colour-space
conversions themselves are skimage's (``rgb2hed``/``hed2rgb``, ``separate_stains``/``combine_stains``).

Dihedral views (``view`` 0..7) are :mod:`cellprobe.data.views`.

Deterministic: ``Augmenter(config)(sample, seed)`` depends only on the sample, the config and the seed.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from cellprobe.config import StrictModel
from cellprobe.data.sample import Sample

IMAGE_FILL = 255  # out-of-image pixels after deformation: white (slide background); labels: 0


class ElasticConfig(StrictModel):
    p: float = Field(0.2, ge=0, le=1)
    # bounded so that a typo is refused: past 1000 px every pixel leaves the patch (a white image, no nucleus);
    # a sigma past a patch side is one shift of the whole patch, and its kernel filled memory (sigma 1e300: killed)
    alpha: float = Field(30.0, ge=0, le=1000)  # displacement scale (pixels, before smoothing)
    sigma: float = Field(6.0, gt=0, le=256)  # smoothing of the displacement field (pixels)


class BlurConfig(StrictModel):
    p: float = Field(0.1, ge=0, le=1)
    max_kernel: int = Field(5, ge=3, le=99)  # OpenCV's kernel sizes are C ints; 99 px blurs a patch away

    @field_validator("max_kernel")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError("max_kernel must be odd")
        return v


class NoiseConfig(StrictModel):
    p: float = Field(0.1, ge=0, le=1)
    std: tuple[float, float] = (0.01, 0.04)  # Gaussian noise sd as a fraction of the 0..255 range

    @field_validator("std")
    @classmethod
    def _range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= v[0] <= v[1] <= 1:
            raise ValueError(f"std must be [low, high] with 0 <= low <= high <= 1, got {list(v)}")
        return v


class ColorConfig(StrictModel):
    p: float = Field(0.3, ge=0, le=1)
    brightness: float = Field(0.1, ge=0, lt=1)  # factors drawn from [1 - x, 1 + x]: x >= 1 could go to 0 or below
    contrast: float = Field(0.1, ge=0, lt=1)
    saturation: float = Field(0.1, ge=0, lt=1)
    hue: float = Field(0.02, ge=0, le=0.5)


class StainConfig(StrictModel):
    """Stain perturbation: each stain concentration c → c·a + b, a ~ U(1-scale, 1+scale), b ~ U(-shift, shift).
    ``hed``: haematoxylin, eosin and residual (DAB) channels of skimage's HED space. ``nissl``: one stain
    (cresyl violet, optical-density direction ``nissl_vector``, nominal: measure it on your slides for
    accuracy) plus two orthogonal residual channels, which are left unchanged."""

    p: float = Field(0.5, ge=0, le=1)
    space: Literal["hed", "nissl"] = "hed"
    scale: float = Field(0.05, ge=0, lt=1)
    shift: float = Field(0.005, ge=0, le=1)  # beyond, every pixel saturates (1e300 overflowed exp)
    nissl_vector: tuple[float, float, float] = (0.46, 0.78, 0.42)  # R, G, B optical density (violet)

    @field_validator("nissl_vector")
    @classmethod
    def _direction(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(v) < 0 or max(v) <= 0:  # an absorbance direction: no negative part, not all zero (no direction)
            raise ValueError(f"nissl_vector is the stain's optical density per R, G, B channel: values >= 0, not all "
                             f"0, got {list(v)}")
        return v


class AugmentConfig(StrictModel):
    dihedral: bool = True  # one of the 8 flips/quarter turns, uniformly
    elastic: ElasticConfig = ElasticConfig()
    blur: BlurConfig = BlurConfig()
    noise: NoiseConfig = NoiseConfig()
    color: ColorConfig = ColorConfig()
    stain: StainConfig = StainConfig()


# --- stain perturbation (the hand-written part) ------------------------------------------------------------

def nissl_matrices(vector: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(rgb_from_nissl, nissl_from_rgb): the stain's unit OD vector and two orthogonal residual directions."""
    v = np.asarray(vector, dtype=np.float64)
    v = v / np.linalg.norm(v)
    helper = np.eye(3)[int(np.argmin(np.abs(v)))]  # the axis least aligned with v
    r1 = np.cross(v, helper)
    r1 /= np.linalg.norm(r1)
    r2 = np.cross(v, r1)
    rgb_from = np.stack([v, r1, r2])
    return rgb_from, np.linalg.inv(rgb_from)


def perturb_stain(image: np.ndarray, scale: np.ndarray, shift: np.ndarray, space: str = "hed",
                  nissl_vector: tuple[float, float, float] = StainConfig().nissl_vector) -> np.ndarray:
    """Scale and shift stain concentrations of an RGB uint8 image (one factor per stain channel).

    The output is the input times the ratio of the re-coloured to the unperturbed stain reconstruction, so
    a = 1, b = 0 returns the image unchanged (skimage's conversions clip negative concentrations, which a
    plain forward/backward round trip would turn into colour shifts of up to tens of levels).
    """
    from skimage.color import combine_stains, hed2rgb, rgb2hed, separate_stains

    rgb = image.astype(np.float64) / 255.0
    if space == "hed":
        stains, back = rgb2hed(rgb), hed2rgb
    else:
        rgb_from, from_rgb = nissl_matrices(nissl_vector)
        stains = separate_stains(rgb, from_rgb)

        def back(s: np.ndarray) -> np.ndarray:
            return combine_stains(s, rgb_from)
    perturbed = stains * np.asarray(scale, np.float64) + np.asarray(shift, np.float64)
    ratio = back(perturbed) / np.maximum(back(stains), 1e-6)
    return np.clip(np.rint(image * ratio), 0, 255).astype(np.uint8)


def _stain_transform(cfg: StainConfig):
    import albumentations as A

    class StainPerturbation(A.ImageOnlyTransform):
        """albumentations wrapper so that the draw uses the pipeline's seeded generator."""

        def __init__(self, p: float) -> None:
            super().__init__(p=p)

        def get_params(self) -> dict[str, Any]:
            n = 3 if cfg.space == "hed" else 1
            scale = np.ones(3)
            shift = np.zeros(3)
            scale[:n] = self.random_generator.uniform(1 - cfg.scale, 1 + cfg.scale, n)
            shift[:n] = self.random_generator.uniform(-cfg.shift, cfg.shift, n)
            return {"scale": scale, "shift": shift}

        def apply(self, img: np.ndarray, scale: np.ndarray, shift: np.ndarray, **_: Any) -> np.ndarray:
            return perturb_stain(img, scale, shift, cfg.space, cfg.nissl_vector)

    return StainPerturbation(p=cfg.p)


# --- the pipeline ------------------------------------------------------------------------------------------

class Augmenter:
    """``augmenter(sample, seed) -> Sample``: one random augmentation of ``sample``, a pure function of its
    arguments and the config (the albumentations pipeline is re-seeded on every call)."""

    def __init__(self, config: AugmentConfig | None = None) -> None:
        import albumentations as A
        import cv2

        self.config = cfg = config or AugmentConfig()
        steps: list[Any] = []
        if cfg.dihedral:
            steps.append(A.D4(p=1.0))
        if cfg.elastic.p > 0:
            steps.append(A.ElasticTransform(alpha=cfg.elastic.alpha, sigma=cfg.elastic.sigma,
                                            interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST,
                                            border_mode=cv2.BORDER_CONSTANT, fill=(IMAGE_FILL,) * 3, fill_mask=0,
                                            p=cfg.elastic.p))
        if cfg.stain.p > 0:
            steps.append(_stain_transform(cfg.stain))
        if cfg.color.p > 0:
            c = cfg.color
            steps.append(A.ColorJitter(brightness=(1 - c.brightness, 1 + c.brightness),
                                       contrast=(1 - c.contrast, 1 + c.contrast),
                                       saturation=(1 - c.saturation, 1 + c.saturation), hue=(-c.hue, c.hue), p=c.p))
        if cfg.blur.p > 0:
            steps.append(A.GaussianBlur(blur_limit=(3, cfg.blur.max_kernel), p=cfg.blur.p))
        if cfg.noise.p > 0:
            steps.append(A.GaussNoise(std_range=cfg.noise.std, p=cfg.noise.p))
        self.pipeline = A.Compose(steps, seed=0, mask_interpolation=cv2.INTER_NEAREST)

    def __call__(self, sample: Sample, seed: int) -> Sample:
        self.pipeline.set_random_seed(int(seed))
        out = self.pipeline(image=sample.image, masks=[sample.inst, sample.cls])
        inst, cls = out["masks"]
        return Sample(np.ascontiguousarray(out["image"], dtype=np.uint8), np.ascontiguousarray(inst, dtype=np.int32),
                      np.ascontiguousarray(cls, dtype=np.uint8), sample.meta)
