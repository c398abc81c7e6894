from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellprobe.data import fixtures
from cellprobe.data.augment import (
    AugmentConfig,
    Augmenter,
    nissl_matrices,
    perturb_stain,
)
from cellprobe.data.sample import Sample, SampleMeta
from cellprobe.data.views import apply_view, inverse_view, invert_view
from cellprobe.errors import InputError

STRONG = AugmentConfig(elastic={"p": 1.0, "alpha": 40}, stain={"p": 1.0, "scale": 0.1, "shift": 0.01},
                       color={"p": 1.0}, blur={"p": 1.0}, noise={"p": 1.0})


def sample(seed: int = 0, size: int = 64) -> Sample:
    image, inst, cls = fixtures.synthetic_patch(np.random.default_rng(seed), size, n_nuclei=10)
    inst = np.where(inst > 0, inst * 1000 + 7, 0).astype(np.int32)  # large, non-contiguous ids
    return Sample(image, inst, cls, SampleMeta("t", "p", "s", 0))


@pytest.fixture(scope="module")
def strong():
    return Augmenter(STRONG)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 50))
def test_ids_survive_with_their_class(strong, seed, data_seed):
    s = sample(data_seed)
    out = strong(s, seed)
    assert out.image.dtype == np.uint8 and out.inst.dtype == np.int32 and out.cls.dtype == np.uint8
    before = dict(zip(s.inst.ravel().tolist(), s.cls.ravel().tolist(), strict=True))
    ids = np.unique(out.inst)
    assert set(ids.tolist()) <= set(before)  # no id invented (nearest interpolation only)
    for i in ids[ids > 0]:  # every surviving instance keeps its class, and class follows instance
        assert set(np.unique(out.cls[out.inst == i]).tolist()) == {before[int(i)]}
    assert np.all(out.cls[out.inst == 0] == 0)


def test_deterministic_given_seed(strong):
    s = sample(3)
    a, b, c = strong(s, 11), strong(s, 11), strong(s, 12)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.inst, b.inst)
    assert not np.array_equal(a.image, c.image)


def test_no_op_config_is_identity():
    off = AugmentConfig(dihedral=False, elastic={"p": 0}, stain={"p": 0}, color={"p": 0}, blur={"p": 0},
                        noise={"p": 0})
    s = sample(1)
    out = Augmenter(off)(s, 5)
    assert np.array_equal(out.image, s.image) and np.array_equal(out.inst, s.inst)


def test_dihedral_only_gives_one_of_eight_views():
    cfg = AugmentConfig(elastic={"p": 0}, stain={"p": 0}, color={"p": 0}, blur={"p": 0}, noise={"p": 0})
    s = sample(2)
    views = [apply_view(s, v) for v in range(8)]
    for seed in range(10):
        out = Augmenter(cfg)(s, seed)
        assert any(np.array_equal(out.inst, v.inst) and np.array_equal(out.image, v.image) for v in views)


@pytest.mark.parametrize("space", ["hed", "nissl"])
def test_stain_perturbation(space):
    s = sample(4)
    assert np.array_equal(perturb_stain(s.image, np.ones(3), np.zeros(3), space), s.image)
    darker = perturb_stain(s.image, np.array([1.3, 1.0, 1.0]), np.zeros(3), space)
    nuclei = s.inst > 0
    assert darker[nuclei].astype(int).sum() < s.image[nuclei].astype(int).sum()  # more stain, less light
    out = Augmenter(AugmentConfig(dihedral=False, elastic={"p": 0}, color={"p": 0}, blur={"p": 0},
                                  noise={"p": 0}, stain={"p": 1.0, "space": space}))(s, 1)
    assert np.array_equal(out.inst, s.inst) and not np.array_equal(out.image, s.image)


def test_nissl_matrices_invert():
    rgb_from, from_rgb = nissl_matrices((0.5, 0.8, 0.4))
    assert np.allclose(rgb_from @ from_rgb, np.eye(3))
    assert np.allclose(rgb_from[0], np.array([0.5, 0.8, 0.4]) / np.linalg.norm([0.5, 0.8, 0.4]))


def test_config_is_strict():
    from cellprobe.config import parse_config

    with pytest.raises(InputError, match="elastc"):
        parse_config(AugmentConfig, {"elastc": {"p": 1}})
    with pytest.raises(InputError, match="odd"):
        parse_config(AugmentConfig, {"blur": {"max_kernel": 4}})


@pytest.mark.parametrize(("section", "value", "bound"), [
    ({"elastic": {"sigma": 1e300}}, 1e300, 256),  # a kernel that filled memory: the process was killed
    ({"elastic": {"alpha": 1e300}}, 1e300, 1000),  # every pixel left the patch: white, no nucleus, exit 0
    ({"blur": {"max_kernel": 1_000_000_001}}, 1_000_000_001, 99),  # an OpenCV traceback
    ({"stain": {"shift": 1e300}}, 1e300, 1),  # exp overflowed: saturated patches
])
def test_augmentation_strengths_past_any_use_are_refused(section, value, bound):
    """The 28th probe's class (numbers past what the code holds), found beside it in the augment section."""
    from cellprobe.config import parse_config

    with pytest.raises(InputError, match=rf"less than or equal to {bound}"):
        parse_config(AugmentConfig, section)


@pytest.mark.parametrize("view", range(8))
def test_views_and_inverses(view):
    s = sample(5, size=32)
    s = Sample(s.image[:, :20].copy(), s.inst[:, :20].copy(), s.cls[:, :20].copy(), s.meta)  # not square
    v = apply_view(s, view)
    k = view % 4
    expected = np.rot90(s.inst, k)
    expected = expected[:, ::-1] if view >= 4 else expected
    assert np.array_equal(v.inst, expected) and np.array_equal(v.image[..., 0], np.asarray(apply_view(s.image, view))[..., 0])
    back = invert_view(v, view)
    assert np.array_equal(back.image, s.image) and np.array_equal(back.inst, s.inst)
    assert apply_view(apply_view(s.inst, view), inverse_view(view)).tolist() == s.inst.tolist()
    img, lab = apply_view((s.image, s.inst), view)
    assert np.array_equal(img, v.image) and np.array_equal(lab, v.inst)


def test_bad_view():
    with pytest.raises(ValueError, match="view"):
        apply_view(np.zeros((4, 4)), 8)
