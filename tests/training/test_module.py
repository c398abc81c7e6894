"""The Lightning module around a network with a tiny fake encoder, on fake batches: steps, frozen encoder,
checkpoint identity, loading the network without the module."""

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cellprobe.decoder import CellDecoder, CellLoss, DecoderConfig
from cellprobe.encoders.identity import EncoderIdentity
from cellprobe.encoders.necks import build_neck
from cellprobe.errors import InputError
from cellprobe.run.checkpoint import check_identity, load_checkpoint, network_state
from cellprobe.run.network import SegmentationNetwork
from cellprobe.training.checkpoint_io import AtomicCheckpointIO
from cellprobe.training.module import SegmenterModule

TINY = DecoderConfig(pyramid_channels=(4, 4, 8, 8), decoder_channels=(8, 8, 4, 4, 4), stem_channels=(2, 4))


class FakeEncoder(nn.Module):
    """Four taps at strides 4..32 from average pooling + a frozen conv with BatchNorm (to catch train mode)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 1)
        self.bn = nn.BatchNorm2d(6)
        self.requires_grad_(False)

    def forward(self, x):
        f = self.bn(self.conv(x))
        return [nn.functional.avg_pool2d(f, s) for s in (4, 8, 16, 32)]


IDENTITY = EncoderIdentity(name="fake", family="cnn", weights_digest="abc", taps=(0, 1, 2, 3), fit="native",
                           input_scale=1.0, tap_channels=(6, 6, 6, 6), tap_strides=(4.0, 8.0, 16.0, 32.0))
CLASSES = ["a", "b"]


def make_network(encoder=None, identity=IDENTITY):
    torch.manual_seed(0)
    neck = build_neck("cnn", identity.tap_channels, identity.tap_strides, TINY.pyramid_channels)
    return SegmentationNetwork(neck, CellDecoder(TINY.pyramid_channels, 2, TINY), encoder)


def make_module(encoder=None, identity=IDENTITY):
    return SegmenterModule(make_network(encoder, identity), CellLoss(2), identity, CLASSES, lr=1e-2)


class FakeBatches(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        semantic = torch.randint(0, 3, (32, 32), generator=g)
        return {"image": torch.rand(3, 32, 32, generator=g), "semantic": semantic,
                "distance": torch.zeros(4, 32, 32), "cls": (semantic > 0).long()}


def _fit(module, tmp_path, epochs=2):
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, plugins=[AtomicCheckpointIO()],
                        num_sanity_val_steps=0)
    loader = DataLoader(FakeBatches(), batch_size=2)
    trainer.fit(module, loader, loader)
    return trainer


def test_online_training_leaves_the_encoder_untouched_and_out_of_checkpoints(tmp_path):
    enc = FakeEncoder()
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    module = make_module(enc)
    trainer = _fit(module, tmp_path)
    assert not enc.training
    for k, v in enc.state_dict().items():
        assert torch.equal(v, before[k]), k  # BatchNorm running stats included
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    ckpt = load_checkpoint(tmp_path / "m.ckpt")
    assert not any(".encoder." in k for k in ckpt["state_dict"])
    assert ckpt["cellprobe"]["encoder"]["name"] == "fake" and ckpt["cellprobe"]["class_names"] == CLASSES
    fresh = make_network(FakeEncoder())  # inference: the plain network, no Lightning module, no loss
    fresh.load_trainable(network_state(ckpt), where="m.ckpt")
    for k, v in module.network.decoder.state_dict().items():
        assert torch.equal(fresh.decoder.state_dict()[k], v)


def test_checkpoint_of_another_encoder_is_refused():
    module = make_module()
    ckpt = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(ckpt)
    from dataclasses import replace

    with pytest.raises(InputError, match="weights_digest"):
        check_identity(ckpt, replace(IDENTITY, weights_digest="zzz"), CLASSES, where="m.ckpt", mpp=None)
    with pytest.raises(InputError, match="tap_channels"):
        check_identity(ckpt, replace(IDENTITY, tap_channels=(6, 6, 6, 7)), CLASSES, where="m.ckpt", mpp=None)
    with pytest.raises(InputError, match="classes"):
        check_identity(ckpt, IDENTITY, ["a", "c"], where="m.ckpt", mpp=None)
    check_identity(ckpt, IDENTITY, CLASSES, where="m.ckpt", mpp=None)
    with pytest.raises(InputError, match=r"trained on data at None µm/px, the run records 0\.5"):
        check_identity(ckpt, IDENTITY, CLASSES, where="m.ckpt", mpp=0.5)  # run.json's mpp edited by hand
    del ckpt["cellprobe"]["mpp"]
    with pytest.raises(InputError, match=r"records no µm/px.*restore the run.s own checkpoint"):
        check_identity(ckpt, IDENTITY, CLASSES, where="m.ckpt", mpp=None)


def test_cached_mode_uses_the_taps_of_the_batch():
    module = make_module().eval()
    image = torch.rand(1, 3, 64, 64)  # the neck's GroupNorm needs more than one cell at stride 32
    taps = FakeEncoder()(image)
    out = module(image, taps)
    assert out["types"].shape == (1, 3, 64, 64)
    with pytest.raises(RuntimeError, match="taps"):
        module(image)


def test_unsafe_or_foreign_files_are_input_errors(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a loadable checkpoint"):
        load_checkpoint(bad)
    torch.save({"weights": torch.zeros(1)}, tmp_path / "x.ckpt")
    with pytest.raises(InputError, match="no state_dict"):
        load_checkpoint(tmp_path / "x.ckpt")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"state_dict": {}, "x": Evil()}, tmp_path / "evil.ckpt")
    with pytest.raises(InputError, match="not a loadable checkpoint"):
        load_checkpoint(tmp_path / "evil.ckpt")


def test_an_empty_checkpoint_file_is_one_input_error(tmp_path):
    (tmp_path / "best.ckpt").write_bytes(b"")
    with pytest.raises(InputError, match="not a loadable checkpoint"):
        load_checkpoint(tmp_path / "best.ckpt")


def test_a_loss_that_turns_nan_stops_training_with_one_line(tmp_path):
    """The 28th probe's sibling: an absurd learning rate diverged (or failed inside AdamW's step with a
    traceback); a loss that is no longer finite stops the fit, rather than training and checkpointing NaN
    weights that evaluate then scores."""

    class Poisoned(FakeBatches):
        def __getitem__(self, i):
            item = super().__getitem__(i)
            if i == 2:  # the second batch
                item["image"][0, 0, 0] = float("nan")
            return item

    module = make_module(FakeEncoder())
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0,
                        enable_checkpointing=False)
    with pytest.raises(InputError, match=r"training diverged: the loss is not finite at epoch 0, step 1 "
                                         r"\(learning rate 0.01\); train again with a lower lr"):
        trainer.fit(module, DataLoader(Poisoned(), batch_size=2))
