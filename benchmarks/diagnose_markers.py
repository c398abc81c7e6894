"""Where a trained run loses PQ: its post-processing re-run on the same predicted maps with one input swapped
for the truth (oracle markers, oracle foreground), and with two other marker rules.

The maps of every patch (validation split of the run and a test split, averaged over ``--tta`` views) are
predicted once; each variant re-runs only the watershed and the metrics engine with the run's tuned
thresholds (postprocess.json). Binary PQ / DQ / SQ per variant and split:

- ``tuned``: the run's own post-processing (what ``cellprobe evaluate`` scores);
- ``true markers``: markers = the true nuclei eroded by a 5×5 square, inside the predicted foreground;
- ``true foreground``: the true foreground (P(body) kept inside it), predicted markers;
- ``centre gate c``: markers also need min over the distance maps of (1 - |d|) >= c (centre-ness);
- ``edt h-maxima h``: markers = h-maxima of the distance transform of the tuned marker mask;
- ``ladder split``: a tuned marker is split when a higher threshold of P(body) - contour strength cuts it into
  two or more pieces of at least ``LADDER_MIN_PX`` px (the first such threshold of ``LADDER_STEPS`` above the
  tuned body threshold).

Then the outline of the tuned instances that match a true nucleus (IoU > 0.5): mean IoU, median area ratio
(predicted / true), and the pixels predicted outside / missed inside the true nuclei, as a share of their
area. A ratio near 1 with both shares large means the outlines are wrong in shape, not biased in size, so
dilating or eroding the instances cannot help.

    .venv/bin/python benchmarks/diagnose_markers.py runs/seg/a-pretrained-tta8 --tta 8
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import cv2
import numpy as np
from scipy import ndimage
from skimage.morphology import h_maxima

from cellprobe.data.targets import BODY
from cellprobe.evaluation.evaluate import iter_predictions, open_eval_data
from cellprobe.inference.segmenter import Segmenter
from cellprobe.metrics import score_maps
from cellprobe.metrics.labels import compact, overlap
from cellprobe.metrics.matching import iou_pairs, pair_iou
from cellprobe.postprocess.label_steps import components, drop_small
from cellprobe.postprocess.maps import grow_markers, instances_from_maps, watershed_inputs
from cellprobe.training.build import open_training_data

Variant = Callable[[dict, np.ndarray, object], np.ndarray]


def _inputs(maps: dict, p):
    return watershed_inputs(maps["semantic"], maps["distance"], p)


def tuned(maps, inst, p):
    return instances_from_maps(maps["semantic"], maps["distance"], p)


def true_markers(maps, inst, p):
    inputs = _inputs(maps, p)
    ids, square = inst.astype(np.float32), np.ones((5, 5), np.uint8)
    # a pixel stays when its whole 5×5 square is its own nucleus: each nucleus eroded alone, in two passes
    keep = (cv2.erode(ids, square) == ids) & (cv2.dilate(ids, square) == ids) & (inst > 0) & inputs.foreground
    markers = np.where(keep, inst, 0).astype(np.int32)
    for k in np.setdiff1d(np.unique(inst[inst > 0]), np.unique(markers)):  # nuclei too small to survive
        markers[(inst == k) & inputs.foreground] = k
    return grow_markers(markers, inputs, p)


def true_foreground(maps, inst, p):
    fg = inst > 0
    body = np.where(fg, maps["semantic"][BODY], 0.0).astype(np.float32)
    prob = np.stack([(~fg).astype(np.float32), np.where(fg, 1 - body, 0), body])
    return instances_from_maps(prob, maps["distance"], p)


def centre_gate(c: float) -> Variant:
    def run(maps, inst, p):
        inputs = _inputs(maps, p)
        seeds = inputs.seeds & (np.min(1 - np.abs(maps["distance"]), axis=0) >= c)
        return grow_markers(drop_small(components(seeds), p.min_marker_size), inputs, p)
    return run


def edt_maxima(h: float) -> Variant:
    def run(maps, inst, p):
        inputs = _inputs(maps, p)
        edt = cv2.distanceTransform(inputs.seeds.astype(np.uint8), cv2.DIST_L2, 5)
        return grow_markers(components(h_maxima(edt, h).astype(bool) & inputs.seeds), inputs, p)
    return run


#: thresholds above the tuned body threshold tried, lowest first, and the smallest piece a split keeps (px)
LADDER_STEPS, LADDER_MIN_PX = (0.1, 0.2, 0.3), 20


def ladder_split(maps, inst, p):
    inputs = _inputs(maps, p)
    markers = drop_small(components(inputs.seeds), p.min_marker_size)
    score = inputs.body - inputs.contour
    out, nxt = markers.copy(), int(markers.max()) + 1
    for k, box in enumerate(ndimage.find_objects(markers), start=1):
        if box is None:
            continue
        region = markers[box] == k
        for t in (p.body_threshold + step for step in LADDER_STEPS):
            pieces = drop_small(components(region & (score[box] >= t)), LADDER_MIN_PX)
            n = int(pieces.max())
            if n >= 2:
                # the pieces replace the marker; its other pixels join them through the watershed
                view = out[box]
                view[region] = 0
                view[pieces > 0] = pieces[pieces > 0] + nxt - 1
                nxt += n
                break
    return grow_markers(out, inputs, p)


def outline_stats(truth: list[np.ndarray], pred: list[np.ndarray]) -> dict[str, float]:
    """The pairs PQ matches (IoU > 0.5, the metrics engine's pairing): mean IoU, median area ratio, and the
    pixels predicted outside / missed inside the true nuclei as shares of their area."""
    ious, ratios, extra, missed, area = [], [], 0, 0, 0
    for t, q in zip(truth, pred, strict=True):
        tl, ql = compact(t.reshape(-1).astype(np.int64)), compact(q.reshape(-1).astype(np.int64))
        ov = overlap(tl.dense, tl.n, ql.dense, ql.n)
        iou = pair_iou(ov, tl.area, ql.area)
        hit = iou_pairs(ov, iou, 0.5)
        ta, qa, both = tl.area[ov.ti[hit]], ql.area[ov.pj[hit]], ov.inter[hit]
        ious.extend(iou[hit])
        ratios.extend(qa / ta)
        extra, missed, area = extra + int((qa - both).sum()), missed + int((ta - both).sum()), area + int(ta.sum())
    return {"pairs": len(ious), "iou": float(np.mean(ious)), "ratio": float(np.median(ratios)),
            "extra": extra / area, "missed": missed / area}


VARIANTS: dict[str, Variant] = {"tuned": tuned, "true markers": true_markers, "true foreground": true_foreground,
                                **{f"centre gate {c}": centre_gate(c) for c in (0.3, 0.5)},
                                **{f"edt h-maxima {h}": edt_maxima(h) for h in (1.0, 3.0)},
                                "ladder split": ladder_split}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--data", default=None, help="test dataset (default: the run's training dataset folder)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--tta", type=int, default=1)
    args = ap.parse_args()

    seg = Segmenter(args.run, tta=args.tta)
    td = open_training_data(seg.run.config)
    test = open_eval_data(args.data or seg.run.config.data.path, args.split, None, seg.run.config)
    print("| split | variant | PQ | DQ | SQ |\n| --- | --- | --- | --- | --- |")
    outlines = {}
    for split, dataset, positions in (("val", td.val, td.val_positions), (args.split, test, range(len(test)))):
        pairs = [(maps, sample.inst) for sample, maps in iter_predictions(seg, dataset, positions)]
        truth = [inst for _, inst in pairs]
        ones = [(t > 0).astype(np.uint8) for t in truth]
        for name, variant in VARIANTS.items():
            pred = [variant(maps, inst, seg.params) for maps, inst in pairs]
            s = score_maps(truth, ones, pred, [(q > 0).astype(np.uint8) for q in pred], num_classes=1).summary
            print(f"| {split} | {name} | {s['pq']:.3f} | {s['dq']:.3f} | {s['sq']:.3f} |", flush=True)
            if name == "tuned":
                outlines[split] = outline_stats(truth, pred)
    print("\n| split | matched pairs | mean IoU | median area ratio | extra px | missed px |\n"
          "| --- | --- | --- | --- | --- | --- |")
    for split, o in outlines.items():
        print(f"| {split} | {o['pairs']} | {o['iou']:.3f} | {o['ratio']:.3f} | {o['extra']:.1%} | {o['missed']:.1%} |")


if __name__ == "__main__":
    main()
