"""Segmenter benchmarks (BENCHMARKS.md, "## Segmenter").

speed:   seconds per training epoch, cached vs online mode, same decoder, same data (the first N batches of an
         epoch, extrapolated to the whole epoch; the feature cache is built before timing starts).
components: per-patch seconds of augmentation, targets, encoder forward and decoder step, and the online/cached
         ratio they imply, for several encoders (no cache needed).
quality: train on CoNSeP train (validation: 20 % of its source images), tune post-processing on the validation
         patches, evaluate on the CoNSeP test patches; pretrained and random weights.

    nice -n 10 .venv/bin/python benchmarks/bench_training.py speed --encoders efficientnet-lite0 vit-b16 --subset 48
    nice -n 10 .venv/bin/python benchmarks/bench_training.py components --encoders efficientnet-lite0 vit-b16
    nice -n 10 .venv/bin/python benchmarks/bench_training.py quality --weights pretrained --out /tmp/seg/pre
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from lightning.pytorch.callbacks import Callback

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "train" / "consep_efficientnet_lite0.yaml"
CONSEP = ROOT.parent / "shared" / "data" / "consep"


class EpochTimer(Callback):
    """Wall time of each training epoch (validation excluded) and its number of batches."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.batches: list[int] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t0, self._n = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._n += 1

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds.append(time.perf_counter() - self._t0)
        self.batches.append(self._n)


def extra_overrides(args: argparse.Namespace) -> dict:
    """``--set KEY=VALUE`` config overrides, values read as YAML."""
    import yaml

    out = {}
    for item in args.set or []:
        key, _, value = item.partition("=")
        out[key] = yaml.safe_load(value)
    return out


def subset_of_train(data: Path, n: int, out: Path) -> Path:
    """The first ``n`` patches of ``data``'s train split (whole source images first) in the ``patches`` layout,
    losslessly (PNG of the decoded pixels): cached and online epochs of a large encoder on a CPU without
    caching all 432 patches."""
    import numpy as np

    from cellprobe.data import open_dataset
    from cellprobe.data.fixtures import write_patches

    ds = open_dataset(data, format="patches", split="train")
    samples = [ds[i] for i in range(min(n, len(ds)))]
    root = out / f"consep-train-first{len(samples)}"
    if not (root / "train" / "labels.npz").is_file():
        write_patches(root / "train", np.stack([s.image for s in samples]), np.stack([s.inst for s in samples]),
                      np.stack([s.cls for s in samples]), [s.meta.name for s in samples],
                      [s.meta.source for s in samples])
    return root


def speed(args: argparse.Namespace) -> dict:
    """Per encoder: a cached and an online training epoch of the same decoder on the same patches."""
    from cellprobe.run.network import build_encoder
    from cellprobe.run.train_config import train_config
    from cellprobe.training import train
    from cellprobe.training.build import open_training_data
    from cellprobe.training.cached import cached_sets

    out = Path(args.out)
    data = subset_of_train(Path(args.data), args.subset, out) if args.subset else Path(args.data)
    results: dict = {"data": str(data), "threads": args.threads}
    for name in args.encoders:
        weights = args.weights if name == "efficientnet-lite0" else "random"
        cache = Path(args.cache_dir) if args.cache_dir else out / f"cache-{name}-{weights}"
        row: dict = {"weights": weights}
        for mode in ("cached", "online"):
            overrides = {"output": str(out / f"{name}-{weights}-{mode}"), "encoder.name": name,
                         "encoder.weights": weights, "data.path": str(data), "epochs": 1,
                         "cache_features": mode == "cached", "cache_dir": str(cache), "trainer.progress": False,
                         "trainer.limit_train_batches": args.batches, "trainer.threads": args.threads,
                         "cache_views": args.cache_views, **extra_overrides(args)}
            cfg = train_config(CONFIG, overrides)
            if mode == "cached":  # build the cache outside the timed epoch
                t0 = time.perf_counter()
                cached_sets(cfg, open_training_data(cfg), build_encoder(cfg))
                row["cache_build_s"] = round(time.perf_counter() - t0, 1)
            timer = EpochTimer()
            train(cfg, callbacks=[timer])
            n_train = len(open_training_data(cfg).train_positions)
            per_batch = timer.seconds[0] / timer.batches[0]
            row[mode] = {"batches_timed": timer.batches[0], "seconds_timed": round(timer.seconds[0], 1),
                         "s_per_patch": round(per_batch / cfg.batch_size, 3),
                         "s_per_epoch": round(per_batch * math.ceil(n_train / cfg.batch_size), 1)}
        row["online_over_cached"] = round(row["online"]["s_per_epoch"] / row["cached"]["s_per_epoch"], 2)
        results[name] = row
        print(json.dumps({name: row}), flush=True)
    return results


def components(args: argparse.Namespace) -> dict:
    """Per-patch seconds of each part of a training step (what separates online from cached mode)."""
    import numpy as np
    import torch

    from cellprobe.data import open_dataset
    from cellprobe.decoder import CellDecoder, CellLoss
    from cellprobe.encoders import build_encoder
    from cellprobe.encoders.necks import build_neck
    from cellprobe.run.train_config import train_config
    from cellprobe.training.datasets import make_item
    from cellprobe.training.online_augment import OnlineAugment
    from cellprobe.training.sampling import Draw

    torch.set_num_threads(args.threads)
    cfg = train_config(CONFIG, {"output": "/tmp/unused", "data.path": str(args.data)})
    ds = open_dataset(args.data, format="patches", split="train")
    samples = [ds[i] for i in range(args.batches * cfg.batch_size)]
    aug = OnlineAugment(cfg.augment)

    def timed(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) / len(samples)

    out: dict = {"patches": len(samples)}
    out["augment_s"] = timed(lambda: [aug(s, Draw(0, 0, i)) for i, s in enumerate(samples)])
    items: list = []
    out["targets_s"] = timed(lambda: items.extend(make_item(s.image, s.inst, s.cls) for s in samples))
    images = torch.stack([it["image"] for it in items])
    batch = {k: torch.stack([it[k] for it in items]) for k in ("semantic", "distance", "cls")}
    bs = cfg.batch_size
    for name in args.encoders:
        enc = build_encoder(name, "random" if name != "efficientnet-lite0" else args.weights)
        taps: list = []
        out[f"encoder_s[{name}]"] = timed(lambda enc=enc, taps=taps: taps.extend(
            enc(images[i:i + bs]) for i in range(0, len(images), bs)))
        neck = build_neck(enc.spec.family, enc.tap_channels, enc.tap_strides, cfg.decoder.pyramid_channels)
        dec = CellDecoder(cfg.decoder.pyramid_channels, ds.num_classes, cfg.decoder)
        loss = CellLoss(ds.num_classes, cfg.loss)
        opt = torch.optim.AdamW([*neck.parameters(), *dec.parameters()])

        def step(neck=neck, dec=dec, loss=loss, opt=opt, taps=taps) -> None:
            for j, i in enumerate(range(0, len(images), bs)):
                x = images[i:i + bs]
                total, _ = loss(dec(neck(taps[j], tuple(x.shape[-2:])), x), {k: v[i:i + bs] for k, v in batch.items()})
                total.backward()
                opt.step()
                opt.zero_grad()

        out[f"decoder_step_s[{name}]"] = timed(step)
        cached = out[f"decoder_step_s[{name}]"] + out["targets_s"]
        online = cached + out[f"encoder_s[{name}]"] + out["augment_s"]
        out[f"online_over_cached[{name}]"] = round(online / cached, 2)
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()} | {"numpy": np.__version__}


def quality(args: argparse.Namespace) -> dict:
    from cellprobe.run.train_config import train_config
    from cellprobe.training import train

    overrides = {"output": str(args.out), "encoder.weights": args.weights, "data.path": str(args.data),
                 "trainer.threads": args.threads, **extra_overrides(args)}
    if args.epochs:
        overrides["epochs"] = args.epochs
    cfg = train_config(CONFIG, overrides)
    t0 = time.perf_counter()
    run_dir = train(cfg).path
    t1 = time.perf_counter()
    from cellprobe.evaluation import evaluate, tune

    params = tune(run_dir, tta=args.tta, overwrite=True)  # a resumed benchmark tunes again
    t2 = time.perf_counter()
    result = evaluate(run_dir, args.data, "test", tta=args.tta)
    t3 = time.perf_counter()
    s = result.summary
    info = json.loads((run_dir / "run.json").read_text())["info"]
    monitor = info.get("monitor", "val_loss")
    return {"weights": args.weights, "run": str(run_dir), "tta": args.tta, "bpq": s["pq"], "mpq_plus": s["mpq_plus"],
            "pq_per_class": s["pq_per_class"], "r2": s["r2"], "f1_detection": s.get("f1_detection"),
            "aji": s["aji"], "epochs": info.get("epochs"), "monitor": monitor, f"best_{monitor}": info.get(f"best_{monitor}"),
            "train_s": round(t1 - t0, 1), "tune_s": round(t2 - t1, 1), "eval_s": round(t3 - t2, 1),
            "postprocess": params.model_dump(mode="json")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("speed", "components", "quality"))
    p.add_argument("--data", default=str(CONSEP))
    p.add_argument("--weights", default="pretrained")
    p.add_argument("--batches", type=int, default=12, help="speed: batches timed per mode")
    p.add_argument("--epochs", type=int, default=None, help="quality: override the config's epochs")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache-views", type=int, default=8, help="speed: dihedral views cached (1 or 8)")
    p.add_argument("--cache-dir", default=None, help="speed: reuse this feature cache (one encoder)")
    p.add_argument("--encoders", nargs="+", default=["efficientnet-lite0"],
                   help="speed, components: encoders timed (all but efficientnet-lite0 with random weights)")
    p.add_argument("--subset", type=int, default=None,
                   help="speed: train on the first N training patches only (large encoders on a CPU)")
    p.add_argument("--set", action="append", help="speed, quality: extra config overrides KEY=VALUE")
    p.add_argument("--tta", type=int, default=1, help="quality: dihedral views averaged in tune and evaluate")
    p.add_argument("--out", default="/tmp/cellprobe-bench-training")
    args = p.parse_args()
    res = {"speed": speed, "components": components, "quality": quality}[args.what](args)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
