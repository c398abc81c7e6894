"""An independent, deliberately plain implementation of the official metrics, for checking cellprobe.metrics.

Written from the definitions in the PanNuke, CoNIC and HoVer-Net evaluation code: one full-image boolean mask
per instance, Python loops over instances and pairs, results pooled exactly as those scripts pool them. Slow
on purpose; it shares no code with cellprobe.metrics. The conventions that the official scripts leave
undefined (they crash or divide 0 by 0) follow cellprobe's documented choices:
- AJI / AJI+ / DICE1 / DICE2 of an image with neither truth nor prediction: NaN, left out of the means;
- DICE2 with instances but no overlapping pair: 0;
- detection: an image without instances adds no placeholder point;
- instance type: pixel majority (ties to the smaller class id, 0 only without classified pixels).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import r2_score


def ids_of(label_map):
    return [int(v) for v in np.unique(label_map) if v != 0]


def masks_of(label_map):
    return {i: label_map == i for i in ids_of(label_map)}


def pq_stats(true, pred, match_iou=0.5):
    """(tp, fp, fn, iou_sum) of two instance maps: pairs with IoU > match_iou."""
    true_masks, pred_masks = masks_of(true), masks_of(pred)
    paired_true, paired_pred, ious = set(), set(), []
    for t, tm in true_masks.items():
        for p in np.unique(pred[tm]):
            if p == 0:
                continue
            pm = pred_masks[int(p)]
            inter = np.logical_and(tm, pm).sum()
            union = tm.sum() + pm.sum() - inter
            iou = inter / union
            if iou > match_iou:
                assert t not in paired_true and int(p) not in paired_pred
                paired_true.add(t)
                paired_pred.add(int(p))
                ious.append(iou)
    tp = len(ious)
    return tp, len(pred_masks) - tp, len(true_masks) - tp, float(np.sum(ious))


def conic_pq(tp, fp, fn, iou_sum):
    dq = tp / ((tp + 0.5 * fp + 0.5 * fn) + 1.0e-6)
    sq = iou_sum / (tp + 1.0e-6)
    return dq, sq, dq * sq


def pannuke_pq(tp, fp, fn, iou_sum):
    dq = tp / (tp + 0.5 * fp + 0.5 * fn)
    sq = iou_sum / (tp + 1.0e-6)
    return dq * sq


def _pairwise(true, pred):
    t_ids, p_ids = ids_of(true), ids_of(pred)
    inter = np.zeros((len(t_ids), len(p_ids)))
    union = np.zeros((len(t_ids), len(p_ids)))
    pred_masks = masks_of(pred)
    for a, t in enumerate(t_ids):
        tm = true == t
        for p in ids_of(pred[tm]):
            b = p_ids.index(p)
            pm = pred_masks[p]
            i = np.logical_and(tm, pm).sum()
            inter[a, b] = i
            union[a, b] = tm.sum() + pm.sum() - i
    area_t = np.array([(true == t).sum() for t in t_ids], float)
    area_p = np.array([(pred == p).sum() for p in p_ids], float)
    return inter, union, area_t, area_p


def aji(true, pred):
    inter, union, area_t, area_p = _pairwise(true, pred)
    if area_t.size == 0 and area_p.size == 0:
        return float("nan")
    if area_t.size == 0 or area_p.size == 0:
        return 0.0
    iou = inter / (union + 1.0e-6)
    total_inter, total_union, used = 0.0, 0.0, set()
    for a in range(area_t.size):
        b = int(np.argmax(iou[a]))
        if iou[a, b] > 0:
            total_inter += inter[a, b]
            total_union += union[a, b]
            used.add(b)
        else:
            total_union += area_t[a]
    total_union += sum(area_p[b] for b in range(area_p.size) if b not in used)
    return total_inter / total_union


def aji_plus(true, pred):
    inter, union, area_t, area_p = _pairwise(true, pred)
    if area_t.size == 0 and area_p.size == 0:
        return float("nan")
    if area_t.size == 0 or area_p.size == 0:
        return 0.0
    iou = inter / (union + 1.0e-6)
    rows, cols = linear_sum_assignment(-iou)
    total_inter, total_union, used_t, used_p = 0.0, 0.0, set(), set()
    for a, b in zip(rows, cols, strict=True):
        if iou[a, b] > 0:
            total_inter += inter[a, b]
            total_union += union[a, b]
            used_t.add(a)
            used_p.add(b)
    total_union += sum(area_t[a] for a in range(area_t.size) if a not in used_t)
    total_union += sum(area_p[b] for b in range(area_p.size) if b not in used_p)
    return total_inter / total_union


def dice1(true, pred):
    t, p = true > 0, pred > 0
    denom = t.sum() + p.sum()
    return float("nan") if denom == 0 else 2.0 * np.logical_and(t, p).sum() / denom


def dice2(true, pred):
    inter_sum, total = 0, 0
    pred_masks = masks_of(pred)
    for t in ids_of(true):
        tm = true == t
        for p in ids_of(pred[tm]):
            pm = pred_masks[p]
            inter_sum += np.logical_and(tm, pm).sum()
            total += tm.sum() + pm.sum()
    if total == 0:
        return float("nan") if not ids_of(true) and not ids_of(pred) else 0.0
    return 2 * inter_sum / total


def instance_info(inst, cls):
    """[(centroid (row, col), type)] per instance in id order; type by pixel majority."""
    out = []
    for i in ids_of(inst):
        mask = inst == i
        rows, cols = np.nonzero(mask)
        values, counts = np.unique(cls[mask], return_counts=True)
        ranked = sorted(zip(values.tolist(), counts.tolist(), strict=True), key=lambda x: x[1], reverse=True)
        kind = ranked[0][0]
        if kind == 0 and len(ranked) > 1:
            kind = ranked[1][0]
        out.append(((rows.mean(), cols.mean()), int(kind)))
    return out


def pair_points(a, b, radius):
    if len(a) == 0 or len(b) == 0:
        return [], list(range(len(a))), list(range(len(b)))
    cost = np.zeros((len(a), len(b)))
    for i, pa in enumerate(a):
        for j, pb in enumerate(b):
            cost[i, j] = np.sqrt((pa[0] - pb[0]) ** 2 + (pa[1] - pb[1]) ** 2)
    rows, cols = linear_sum_assignment(cost)
    pairs = [(int(i), int(j)) for i, j in zip(rows, cols, strict=True) if cost[i, j] <= radius]
    return pairs, [i for i in range(len(a)) if i not in {p[0] for p in pairs}], [
        j for j in range(len(b)) if j not in {p[1] for p in pairs}
    ]


def class_counts(inst, cls, num_classes, crop=None):
    if crop is not None:
        h, w = inst.shape
        y0, x0 = int((h - crop) * 0.5), int((w - crop) * 0.5)
        inst, cls = inst[y0 : y0 + crop, x0 : x0 + crop], cls[y0 : y0 + crop, x0 : x0 + crop]
    return [len(ids_of(inst * (cls == c))) for c in range(1, num_classes + 1)]


def image_row(ti, tc, pi, pc, num_classes, radius, crop=None):
    """The per-image counts (named as cellprobe's per-image columns), computed plainly."""
    out = dict(zip(("tp", "fp", "fn", "iou_sum"), pq_stats(ti, pi), strict=True))
    out["n_true"], out["n_pred"] = len(ids_of(ti)), len(ids_of(pi))
    for c in range(1, num_classes + 1):
        stats = pq_stats(ti * (tc == c), pi * (pc == c))
        out.update(dict(zip((f"tp_c{c}", f"fp_c{c}", f"fn_c{c}", f"iou_sum_c{c}"), stats, strict=True)))
    for who, (i, c_map) in {"true": (ti, tc), "pred": (pi, pc)}.items():
        for c, n in enumerate(class_counts(i, c_map, num_classes), 1):
            out[f"{who}_count_c{c}"] = n
        if crop:
            for c, n in enumerate(class_counts(i, c_map, num_classes, crop), 1):
                out[f"{who}_count_crop_c{c}"] = n
    t_info, p_info = instance_info(ti, tc), instance_info(pi, pc)
    pairs, ut, up = pair_points([x[0] for x in t_info], [x[0] for x in p_info], radius)
    types = range(num_classes + 1)
    for t in types:
        out[f"det_fn_t{t}"] = sum(t_info[i][1] == t for i in ut)
        out[f"det_fp_p{t}"] = sum(p_info[j][1] == t for j in up)
        for p in types:
            out[f"det_pair_t{t}_p{p}"] = sum(t_info[i][1] == t and p_info[j][1] == p for i, j in pairs)
    return out


def conic_summary(true, pred, num_classes, radius, crop=None):
    """The CoNIC-format summary of (N, H, W, 2) stacks, computed the plain way."""
    pq_list, dq_list, sq_list, class_info, aji_l, ajip_l, d1_l, d2_l = [], [], [], [], [], [], [], []
    true_counts, pred_counts = [], []
    paired_t, paired_p, unpaired_t, unpaired_p = [], [], [], []
    for k in range(true.shape[0]):
        ti, tc, pi, pc = true[k, ..., 0], true[k, ..., 1], pred[k, ..., 0], pred[k, ..., 1]
        dq, sq, pq = conic_pq(*pq_stats(ti, pi))
        pq_list.append(pq)
        dq_list.append(dq)
        sq_list.append(sq)
        class_info.append([pq_stats(ti * (tc == c), pi * (pc == c)) for c in range(1, num_classes + 1)])
        aji_l.append(aji(ti, pi))
        ajip_l.append(aji_plus(ti, pi))
        d1_l.append(dice1(ti, pi))
        d2_l.append(dice2(ti, pi))
        true_counts.append(class_counts(ti, tc, num_classes, crop))
        pred_counts.append(class_counts(pi, pc, num_classes, crop))
        t_info, p_info = instance_info(ti, tc), instance_info(pi, pc)
        pairs, ut, up = pair_points([x[0] for x in t_info], [x[0] for x in p_info], radius)
        paired_t += [t_info[i][1] for i, _ in pairs]
        paired_p += [p_info[j][1] for _, j in pairs]
        unpaired_t += [t_info[i][1] for i in ut]
        unpaired_p += [p_info[j][1] for j in up]
    totals = np.array(class_info, dtype=float).sum(axis=0) if num_classes else np.zeros((0, 4))
    pq_c = np.array([conic_pq(*row)[2] for row in totals])
    t_counts, p_counts = np.array(true_counts, float), np.array(pred_counts, float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r2_c = np.array([r2_score(t_counts[:, c], p_counts[:, c]) for c in range(num_classes)])
    pt, pp, ut_a, up_a = (np.array(x, int) for x in (paired_t, paired_p, unpaired_t, unpaired_p))
    tp_d, fp_d, fn_d = pt.size, up_a.size, ut_a.size
    f1_per_class = []
    for c in range(1, num_classes + 1):
        sel = (pt == c) | (pp == c)
        st, sp = pt[sel], pp[sel]
        tp = ((st == c) & (sp == c)).sum()
        tn = ((st != c) & (sp != c)).sum()
        fp = ((st != c) & (sp == c)).sum()
        fn = ((st == c) & (sp != c)).sum()
        denom = 2 * (tp + tn) + 2 * fp + 2 * fn + (up_a == c).sum() + (ut_a == c).sum()
        f1_per_class.append(2 * (tp + tn) / denom if denom else float("nan"))
    nanmean = _quiet_nanmean
    return {
        "pq": float(np.mean(pq_list)),
        "dq": float(np.mean(dq_list)),
        "sq": float(np.mean(sq_list)),
        "mpq_plus": float(np.mean(pq_c)) if num_classes else float("nan"),
        "pq_per_class": pq_c.tolist(),
        "r2": float(np.mean(r2_c)) if num_classes else float("nan"),
        "r2_per_class": r2_c.tolist(),
        "f1_detection": 2 * tp_d / (2 * tp_d + fp_d + fn_d) if (tp_d + fp_d + fn_d) else float("nan"),
        "accuracy_type": float((pt == pp).sum() / tp_d) if tp_d else float("nan"),
        "f1_per_class": f1_per_class,
        "aji": nanmean(aji_l),
        "aji_plus": nanmean(ajip_l),
        "dice": nanmean(d1_l),
        "dice2": nanmean(d2_l),
    }


def _quiet_nanmean(values):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(np.nanmean(np.array(values, float)))


def binarize(masks, num_classes):
    """PanNuke's merged map: each (channel, id) a new instance, later channels overwriting earlier ones."""
    out = np.zeros(masks.shape[:2], np.int64)
    count = 1
    for ch in range(num_classes):
        layer = masks[..., ch]
        for v in ids_of(layer):
            out[layer == v] = count
            count += 1
    return out


def pannuke_summary(true, pred, types, num_classes=5):
    """The official PanNuke run.py result (bugs of the published script fixed as its text intends)."""
    mpq_all, bpq_all = [], []
    for k in range(true.shape[0]):
        true_bin = binarize(true[k], num_classes)
        pred_bin = binarize(pred[k], num_classes)
        bpq = float("nan") if len(np.unique(true_bin)) == 1 else pannuke_pq(*pq_stats(true_bin, pred_bin))
        per_class = []
        for c in range(num_classes):
            t = true[k, ..., c].astype(np.int64)
            p = pred[k, ..., c].astype(np.int64)
            per_class.append(float("nan") if len(np.unique(t)) == 1 else pannuke_pq(*pq_stats(t, p)))
        mpq_all.append(per_class)
        bpq_all.append(bpq)
    nanmean = _quiet_nanmean
    mpq_each = [nanmean(pq) for pq in mpq_all]
    tissues = sorted(set(types))
    tissue_m = [nanmean([mpq_each[i] for i in range(len(types)) if types[i] == t]) for t in tissues]
    tissue_b = [nanmean([bpq_all[i] for i in range(len(types)) if types[i] == t]) for t in tissues]
    return {
        "bpq": nanmean(tissue_b),
        "mpq": nanmean(tissue_m),
        "bpq_image": nanmean(bpq_all),
        "mpq_image": nanmean(mpq_each),
        "pq_per_class": [nanmean([pq[c] for pq in mpq_all]) for c in range(num_classes)],
        "per_tissue": {t: {"bpq": b, "mpq": m} for t, b, m in zip(tissues, tissue_b, tissue_m, strict=True)},
        "image_bpq": bpq_all,
        "image_class_pq": mpq_all,
    }
