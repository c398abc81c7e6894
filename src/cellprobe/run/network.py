"""The network of a run: frozen encoder → trainable neck → the decoder, as a plain ``nn.Module``.

Training wraps it in a Lightning module together with the loss; inference loads it from a run's checkpoint
with neither. It is assembled from a run's config here and nowhere else, so a network is built the same way
for training, evaluation, tuning and prediction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cellprobe.decoder import CellDecoder
from cellprobe.decoder.model import INPUT_MULTIPLE
from cellprobe.encoders.identity import EncoderIdentity
from cellprobe.errors import InputError
from cellprobe.run.checkpoint import check_identity, load_checkpoint, network_state
from cellprobe.run.train_config import TrainConfig
from cellprobe.torch_files import state_problems


class SegmentationNetwork(nn.Module):
    """``forward(image, taps=None)`` → the decoder's raw outputs. ``encoder`` None: cached mode, where the
    encoder's taps come with the batch. The encoder stays frozen and in eval mode."""

    #: image sides the network takes are multiples of this
    input_multiple = INPUT_MULTIPLE

    def __init__(self, neck: nn.Module, decoder: CellDecoder, encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.neck = neck
        self.decoder = decoder
        if encoder is not None:
            encoder.eval()
            encoder.requires_grad_(False)

    def train(self, mode: bool = True) -> SegmentationNetwork:
        """Lightning switches everything to train mode each epoch; the frozen encoder (and its BatchNorm
        statistics) stays in eval mode."""
        super().train(mode)
        if self.encoder is not None:
            self.encoder.eval()
        return self

    def taps(self, image: torch.Tensor) -> list[torch.Tensor]:
        if self.encoder is None:
            raise RuntimeError("cached-mode network: the batch must carry the encoder taps")
        with torch.no_grad():
            return [t.detach() for t in self.encoder(image)]

    def forward(self, image: torch.Tensor, taps: Sequence[torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        if taps is None:
            taps = self.taps(image)
        taps = [t.to(image.dtype) if t.is_floating_point() else t for t in taps]
        pyramid = self.neck(list(taps), tuple(image.shape[-2:]))
        return self.decoder(pyramid, image)

    def load_trainable(self, state: dict[str, torch.Tensor], where: Any = None) -> None:
        """Load neck and decoder weights strictly (the encoder keeps its own)."""
        expected = {k: v for k, v in self.state_dict().items() if not k.startswith("encoder.")}
        problems = state_problems(expected, state)
        if problems:  # keys, shapes, a weight cast silently (integers), overflowing, a negative variance
            raise InputError(where, f"checkpoint does not fit the model ({'; '.join(problems)})")
        full = dict(state)
        if self.encoder is not None:
            full.update({f"encoder.{k}": v for k, v in self.encoder.state_dict().items()})
        try:
            self.load_state_dict(full, strict=True)
        except RuntimeError as exc:
            raise InputError(where, f"checkpoint does not fit the model ({str(exc).splitlines()[0][:200]})") from None


def build_encoder(config: TrainConfig, device: Any = "cpu") -> Any:
    """The frozen encoder of ``config`` (random weights are seeded by the run's seed)."""
    from cellprobe.encoders import build_encoder as build

    e = config.encoder
    return build(e.name, e.weights, e.taps, fit=e.fit, input_scale=e.input_scale, seed=config.seed, device=device)


def encoder_build_key(config: TrainConfig) -> str:
    """What decides which frozen encoder ``config`` builds (random weights depend on the seed too): runs with
    equal keys share one encoder instance, known before building it."""
    section = config.encoder.model_dump(mode="json")
    return json.dumps({**section, "seed": config.seed if config.encoder.weights == "random" else None}, sort_keys=True)


def build_network(config: TrainConfig, encoder: EncoderIdentity, num_classes: int,
                  frozen: nn.Module | None = None) -> SegmentationNetwork:
    """A network with fresh trainable weights for ``config``, its neck sized for ``encoder``'s taps;
    ``frozen``: the encoder module itself (None in cached mode)."""
    from cellprobe.encoders.necks import build_neck

    neck = build_neck(encoder.family, encoder.tap_channels, encoder.tap_strides,
                      out_channels=config.decoder.pyramid_channels)
    decoder = CellDecoder(config.decoder.pyramid_channels, num_classes, config.decoder)
    return SegmentationNetwork(neck, decoder, frozen)


def check_checkpoint(config: TrainConfig, encoder: EncoderIdentity, class_names: Sequence[str],
                     checkpoint: Path, mpp: float | None) -> None:
    """Refuse a run's ``checkpoint`` that could not be loaded later: unreadable or unsafe, trained on another
    encoder or classes, or with trainable weights that do not fit ``config``'s network (checked on the neck and
    decoder alone: no encoder is built)."""
    ckpt = load_checkpoint(checkpoint)
    check_identity(ckpt, encoder, list(class_names), where=checkpoint, mpp=mpp)
    build_network(config, encoder, len(class_names)).load_trainable(network_state(ckpt, checkpoint), where=checkpoint)


def load_network(config: TrainConfig, checkpoint: Path, frozen: Any, class_names: Sequence[str],
                 mpp: float | None) -> SegmentationNetwork:
    """The network of a run's ``checkpoint`` on the built encoder ``frozen``, in eval mode; a checkpoint
    trained on another encoder, for other classes or on data of another µm/px than ``mpp`` is refused."""
    ckpt = load_checkpoint(checkpoint)
    check_identity(ckpt, frozen.identity, list(class_names), where=checkpoint, mpp=mpp)
    network = build_network(config, frozen.identity, len(class_names), frozen)
    network.load_trainable(network_state(ckpt, checkpoint), where=checkpoint)
    return network.eval()
