"""`cellprobe train` prints only cellprobe's own lines: Lightning's banners and the warnings raised during the fit
go to <run>/logs/framework.log, and the logging and warnings state is restored afterwards."""

from __future__ import annotations

import logging
import warnings

import yaml
from tests.training.tiny import make_tiny_data, tiny_config

BANNERS = ("GPU available", "TPU available", "HPU available", "💡 Tip", "You are using a CUDA device",
           "smaller than the logging interval", "does not have many workers")


def test_train_keeps_framework_chatter_off_the_terminal(capfd, caplog, tmp_path):
    from cellprobe.cli.app import main

    data = make_tiny_data(tmp_path / "data")
    cfg = tiny_config(data, tmp_path / "ignored", epochs=1, cache_views=1)
    for key in ("output", "encoder", "data"):
        cfg.pop(key)
    cfg["trainer"]["log_every_n_steps"] = 10  # 2 training batches per epoch: Lightning warns about the interval
    cfg_path = tmp_path / "train.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    before = {name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate)
              for name in ("lightning.pytorch", "lightning.fabric", "lightning_utilities")}
    shown = warnings.showwarning
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:  # what would reach the terminal as a warning
        warnings.simplefilter("always")
        rc = main(["train", "--encoder", "efficientnet-lite0", "--weights", "random", "--data", str(data),
                   "--format", "patches", "--out", str(run), "--config", str(cfg_path),
                   "--set", "data.val_fraction=0.25"])
    out, err = capfd.readouterr()
    assert rc == 0, err
    assert out.strip() == f"run: {run}"
    terminal = [out, err, *(str(w.message) for w in caught), *(r.getMessage() for r in caplog.records)]
    for banner in BANNERS:
        assert not any(banner in text for text in terminal), banner
    log = (run / "logs" / "framework.log").read_text(encoding="utf-8")
    assert "GPU available" in log and "smaller than the logging interval" in log
    # restored: Lightning's own handlers and propagation, the warnings display
    after = {name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate) for name in before}
    assert after == before
    assert warnings.showwarning is shown


def test_cellprobe_warnings_still_reach_the_terminal(tmp_path):
    from cellprobe.data.validate import DataWarning
    from cellprobe.training.fit import _framework_log

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _framework_log(tmp_path) as log:
            warnings.warn("some framework detail", UserWarning, stacklevel=1)
            warnings.warn("3 images left out", DataWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["3 images left out"]
    text = log.read_text(encoding="utf-8")
    assert "some framework detail" in text and "3 images left out" in text
