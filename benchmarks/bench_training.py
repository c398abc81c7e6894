"""Segmenter benchmarks (BENCHMARKS.md, "## Segmenter").

speed:   seconds per training epoch, cached vs online mode, same decoder, same data (the first N batches of an
         epoch, extrapolated to the whole epoch; the feature cache is built before timing starts).
quality: train on CoNSeP train (validation: 20 % of its source images), tune post-processing on the validation
         patches, evaluate on the CoNSeP test patches; pretrained and random weights.

    nice -n 10 .venv/bin/python benchmarks/bench_training.py speed --encoder efficientnet-lite0 --batches 12
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


def speed(args: argparse.Namespace) -> dict:
    from cellprobe.training import train
    from cellprobe.training.build import open_training_data
    from cellprobe.training.config import train_config

    out = Path(args.out)
    cache = out / "feature_cache"
    results = {}
    for mode in ("cached", "online"):
        overrides = {"output": str(out / f"{args.encoder}-{args.weights}-{mode}"), "encoder.name": args.encoder,
                     "encoder.weights": args.weights, "data.path": str(args.data), "epochs": 1,
                     "cache_features": mode == "cached", "cache_dir": str(cache), "trainer.progress": False,
                     "trainer.limit_train_batches": args.batches, "trainer.threads": args.threads}
        cfg = train_config(CONFIG, overrides)
        if mode == "cached":  # build the cache outside the timed epoch
            from cellprobe.training.build import build_encoder
            from cellprobe.training.cached import cached_sets

            t0 = time.perf_counter()
            cached_sets(cfg, open_training_data(cfg), build_encoder(cfg))
            results["cache_build_s"] = round(time.perf_counter() - t0, 1)
        timer = EpochTimer()
        train(cfg, callbacks=[timer])
        n_train = len(open_training_data(cfg).train_positions)
        per_batch = timer.seconds[0] / timer.batches[0]
        epoch = per_batch * math.ceil(n_train / cfg.batch_size)
        results[mode] = {"batches_timed": timer.batches[0], "seconds_timed": round(timer.seconds[0], 1),
                         "s_per_patch": round(per_batch / cfg.batch_size, 3), "s_per_epoch": round(epoch, 1)}
    results["online_over_cached"] = round(results["online"]["s_per_epoch"] / results["cached"]["s_per_epoch"], 2)
    return results


def quality(args: argparse.Namespace) -> dict:
    from cellprobe.training import train
    from cellprobe.training.config import train_config

    overrides = {"output": str(args.out), "encoder.weights": args.weights, "data.path": str(args.data),
                 "trainer.threads": args.threads}
    if args.epochs:
        overrides["epochs"] = args.epochs
    for item in args.set or []:
        key, _, value = item.partition("=")
        import yaml

        overrides[key] = yaml.safe_load(value)
    cfg = train_config(CONFIG, overrides)
    t0 = time.perf_counter()
    run_dir = train(cfg)
    t1 = time.perf_counter()
    from cellprobe.training import evaluate, tune

    params = tune(run_dir)
    t2 = time.perf_counter()
    result = evaluate(run_dir, args.data, "test")
    t3 = time.perf_counter()
    s = result.summary
    stamp = json.loads((run_dir / "run.json").read_text())
    return {"weights": args.weights, "run": str(run_dir), "bpq": s["pq"], "mpq_plus": s["mpq_plus"],
            "pq_per_class": s["pq_per_class"], "r2": s["r2"], "f1_detection": s.get("f1_detection"),
            "aji": s["aji"], "epochs": stamp["info"].get("epochs"), "best_val_loss": stamp["info"].get("best_val_loss"),
            "train_s": round(t1 - t0, 1), "tune_s": round(t2 - t1, 1), "eval_s": round(t3 - t2, 1),
            "postprocess": params.model_dump(mode="json")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("speed", "quality"))
    p.add_argument("--data", default=str(CONSEP))
    p.add_argument("--encoder", default="efficientnet-lite0")
    p.add_argument("--weights", default="pretrained")
    p.add_argument("--batches", type=int, default=12, help="speed: batches timed per mode")
    p.add_argument("--epochs", type=int, default=None, help="quality: override the config's epochs")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--set", action="append", help="quality: extra config overrides KEY=VALUE")
    p.add_argument("--out", default="/tmp/cellprobe-bench-training")
    args = p.parse_args()
    res = speed(args) if args.what == "speed" else quality(args)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
