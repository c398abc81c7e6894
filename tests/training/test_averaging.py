"""The warmed-up EMA: follows the weights at first, settles to the configured decay."""

from __future__ import annotations

import pytest
import torch
from torch.optim.swa_utils import AveragedModel

from cellprobe.training.averaging import ema_update, warmed_decay


def test_decay_warms_up_to_its_ceiling():
    assert warmed_decay(0.995, 0) == pytest.approx(0.1)
    assert warmed_decay(0.995, 40) == pytest.approx(41 / 50)
    assert warmed_decay(0.995, 10_000) == 0.995
    values = [warmed_decay(0.99, n) for n in range(2000)]
    assert values == sorted(values)


def test_averaged_model_follows_the_formula():
    net = torch.nn.Linear(2, 1, bias=False)
    avg = AveragedModel(net, avg_fn=ema_update(0.5), use_buffers=True)
    expected = None
    for step, value in enumerate([1.0, 2.0, 4.0, 8.0]):
        net.weight.data.fill_(value)
        avg.update_parameters(net)
        # the first update copies; update k (k >= 1) mixes with decay min(0.5, (1 + k) / (10 + k))
        expected = value if step == 0 else warmed_decay(0.5, step) * expected + (1 - warmed_decay(0.5, step)) * value
        assert avg.module.weight.data[0, 0].item() == pytest.approx(expected)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.1])
def test_decay_out_of_range(decay):
    with pytest.raises(ValueError, match="decay"):
        ema_update(decay)
