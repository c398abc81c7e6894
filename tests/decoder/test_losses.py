import numpy as np
import pytest
import torch

from cellprobe.decoder import CellLoss, LossConfig, class_weights_from_counts
from cellprobe.decoder.losses import distance_losses, sobel, soft_dice_loss, tversky_loss


def _batch(b=2, h=16, w=16, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    semantic = torch.randint(0, 3, (b, h, w), generator=g)
    cls = torch.where(semantic > 0, torch.randint(1, c + 1, (b, h, w), generator=g), 0)
    distance = (torch.rand(b, 4, h, w, generator=g) * 2 - 1) * (semantic > 0)[:, None]
    return {"semantic": semantic, "cls": cls, "distance": distance}


def _perfect(batch, c=3, scale=30.0):
    return {
        "semantic": torch.nn.functional.one_hot(batch["semantic"], 3).permute(0, 3, 1, 2).float() * scale,
        "types": torch.nn.functional.one_hot(batch["cls"], c + 1).permute(0, 3, 1, 2).float() * scale,
        "distance": batch["distance"].clone(),
    }


def test_perfect_prediction_scores_near_zero_and_noise_scores_higher():
    batch = _batch()
    loss = CellLoss(3)
    total, terms = loss(_perfect(batch), batch)
    assert total.item() < 1e-3
    assert set(terms) == {"semantic_ce", "semantic_dice", "distance_l1", "distance_grad", "types_ce", "types_tversky"}
    noisy = {k: v + torch.randn_like(v) for k, v in _perfect(batch, scale=1.0).items()}
    noisy["distance"] = noisy["distance"].clamp(-1, 1)
    total_noisy, terms_noisy = loss(noisy, batch)
    assert all(terms_noisy[k] > terms[k] for k in terms)
    assert total_noisy > total


def test_weights_switch_terms_off():
    batch = _batch()
    out = {k: torch.randn_like(v) for k, v in _perfect(batch).items()}
    cfg = LossConfig(semantic_ce=0, semantic_dice=0, distance_l1=0, distance_grad=0, types_ce=0, types_tversky=2.0)
    total, terms = CellLoss(3, cfg)(out, batch)
    assert torch.isclose(total, 2.0 * terms["types_tversky"])


def test_dice_and_tversky_values():
    target = torch.tensor([[[0, 1], [1, 1]]])
    logits = torch.nn.functional.one_hot(target, 2).permute(0, 3, 1, 2).float() * 50
    assert soft_dice_loss(logits, target).item() < 1e-4
    wrong = torch.nn.functional.one_hot(1 - target, 2).permute(0, 3, 1, 2).float() * 50
    assert tversky_loss(wrong, target, 0.3, 0.7).item() > 0.5  # smoothing keeps it below 1 on 4 pixels
    # beta weighs misses: predicting all background misses class 1 → larger loss with larger beta
    allbg = torch.zeros(1, 2, 2, 2)
    allbg[:, 0] = 50
    assert tversky_loss(allbg, target, 0.1, 0.9) > tversky_loss(allbg, target, 0.9, 0.1)


def test_distance_losses_masking():
    target = torch.zeros(1, 4, 8, 8)
    semantic = torch.zeros(1, 8, 8, dtype=torch.long)
    semantic[0, 2:6, 2:6] = 2
    pred = torch.zeros(1, 4, 8, 8)
    pred[0, :, 0, 0] = 1.0  # error on background only
    l1_bg, grad_bg = distance_losses(pred, target, semantic, background_weight=0.0)
    assert l1_bg.item() == 0.0 and grad_bg.item() == 0.0
    l1_w, _ = distance_losses(pred, target, semantic, background_weight=0.5)
    assert l1_w.item() > 0
    pred2 = torch.zeros(1, 4, 8, 8)
    pred2[0, :, 3, 3] = 1.0  # error inside the nucleus
    l1, grad = distance_losses(pred2, target, semantic, background_weight=0.0)
    assert l1.item() == pytest.approx(1.0 / 16) and grad.item() > 0


def test_distance_losses_weigh_the_boundary_band():
    target = torch.zeros(1, 4, 8, 8)
    semantic = torch.full((1, 8, 8), 2, dtype=torch.long)
    semantic[0, :, 4] = 1  # a boundary column between two cells: 8 of 64 nucleus pixels
    on_band = torch.zeros(1, 4, 8, 8)
    on_band[0, :, 3, 4] = 1.0
    in_body = torch.zeros(1, 4, 8, 8)
    in_body[0, :, 3, 1] = 1.0
    # weight 1 is the unweighted mean over nucleus pixels: both errors cost the same
    for pred in (on_band, in_body):
        assert distance_losses(pred, target, semantic, 0.0)[0].item() == pytest.approx(1.0 / 64)
    # weight 5: an error on the band costs 5 / (56 + 5 * 8), one in the body 1 / (56 + 5 * 8)
    band_l1, band_grad = distance_losses(on_band, target, semantic, 0.0, boundary_weight=5.0)
    body_l1, body_grad = distance_losses(in_body, target, semantic, 0.0, boundary_weight=5.0)
    assert band_l1.item() == pytest.approx(5.0 / 96)
    assert body_l1.item() == pytest.approx(1.0 / 96)
    assert band_grad.item() > body_grad.item() > 0


def test_sobel_of_a_ramp():
    ramp = torch.arange(6.0).repeat(6, 1)[None, None]  # increases along x by 1 per pixel
    g = sobel(ramp)
    assert torch.allclose(g[0, 0, 1:-1, 1:-1], torch.ones(4, 4))  # normalised: slope 1 per pixel
    assert torch.allclose(g[0, 1], torch.zeros(6, 6))


def test_class_weights_from_counts():
    w = class_weights_from_counts([900, 100, 0])
    assert np.mean(w) == pytest.approx(1.0)
    assert w[1] > w[0] and w[2] == max(w)
    assert class_weights_from_counts([0, 0]) == [1.0, 1.0]
    with pytest.raises(ValueError, match="class weights"):
        CellLoss(3, class_weights=[1.0, 1.0])


def test_semantic_weights_weigh_the_cross_entropy_per_class():
    """Errors on the boundary class cost ``semantic_weights[1]`` times as much; the weights stay out of the
    state dict (they come from the config, so older checkpoints still load)."""
    torch.manual_seed(0)
    out = {"semantic": torch.randn(2, 3, 8, 8), "distance": torch.zeros(2, 4, 8, 8), "types": torch.randn(2, 3, 8, 8)}
    batch = {"semantic": torch.ones(2, 8, 8, dtype=torch.long), "distance": torch.zeros(2, 4, 8, 8),
             "cls": torch.zeros(2, 8, 8, dtype=torch.long)}  # every pixel boundary
    plain = CellLoss(2)(out, batch)[1]["semantic_ce"]
    weighted_loss = CellLoss(2, LossConfig(semantic_weights=(1.0, 5.0, 1.0)))
    weighted = weighted_loss(out, batch)[1]["semantic_ce"]
    # one class present: the weighted mean equals the plain mean (weights cancel)
    assert weighted.item() == pytest.approx(plain.item())
    batch["semantic"][0] = 0  # half background: the boundary half now counts 5×
    ce = torch.nn.functional.cross_entropy(out["semantic"], batch["semantic"], reduction="none")
    want = (ce[0].sum() + 5 * ce[1].sum()) / (64 + 5 * 64)
    assert weighted_loss(out, batch)[1]["semantic_ce"].item() == pytest.approx(want.item(), rel=1e-5)
    assert "semantic_weights" not in weighted_loss.state_dict()
