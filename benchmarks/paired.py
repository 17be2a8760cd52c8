"""Paired comparison of two ``bench_unseen.py --json`` runs on the same images.

Two settings scored on the same set differ far less from each other than either's interval
says: the images that are hard for one are hard for the other. This script takes one method
of each run (``weakloc default`` unless ``--method`` says otherwise), pairs the images (both
files list them in the set's order), and prints for each the per-image mean, then the mean
difference B - A with its standard error and 95 % percentile bootstrap interval over the
images (the schema's ``evaluate.bootstrap``): pixel F1 at 0.5 on the forgeries, the flagged
fraction on the authentic photos and the share of those above 1 %; then the pixel AUC of the
forgeries' pooled 8-bit maps and the image AUC of the image scores, A and B computed on the same
bootstrap resamples of the images (their standard error is the resamples' standard deviation).

    python benchmarks/bench_unseen.py ... --json A.json
    python benchmarks/bench_unseen.py ... --set segmenters.sam.encoder_size=512 --json B.json
    python benchmarks/paired.py A.json B.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from weakloc.intervals import BootstrapSettings, percentile_interval, resample_indices, standard_error

BOOTSTRAP = BootstrapSettings.from_section({})


def _load(path: str, method: str) -> dict:
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        sys.exit(f"{path}: cannot read a bench_unseen.py --json result ({exc.__class__.__name__}: {exc})")
    if method not in result["table"]:
        sys.exit(f"{path}: no method {method!r} (has {', '.join(result['table'])})")
    row = result["table"][method]
    if "f1_per_image" not in row:
        sys.exit(f"{path}: no per-image scores (written by an older bench_unseen.py): rerun it")
    return {"images": result["images"], "source": result.get("source"), "set": result.get("set"),
            "f1": np.asarray([np.nan if v is None else v for v in row["f1_per_image"]], dtype=np.float64),
            "flagged": np.asarray(row["auth_flagged_per_image"], dtype=np.float64),
            "hist8": np.asarray(row.get("hist8_per_image", []), dtype=np.int64).reshape(-1, 2, 256),
            "labels": np.asarray(row.get("labels_per_image", []), dtype=np.int64),
            "image_scores": np.asarray(row.get("image_score_per_image", []), dtype=np.float64)}


def paired_image_auc(labels: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict:
    """Image AUC of A's and B's image scores on the same images, and B - A with the bootstrap's SE
    and interval (resamples with one class only are skipped)."""
    from sklearn.metrics import roc_auc_score

    diffs = []
    for i in resample_indices(labels.size, BOOTSTRAP):
        if 0 < labels[i].sum() < labels.size:
            diffs.append(roc_auc_score(labels[i], b[i]) - roc_auc_score(labels[i], a[i]))
    d = np.asarray(diffs)
    auc_a, auc_b = roc_auc_score(labels, a), roc_auc_score(labels, b)
    return {"n": int(labels.size), "a": auc_a, "b": auc_b, "diff": auc_b - auc_a, "se": float(d.std(ddof=1)),
            "interval": percentile_interval(d, BOOTSTRAP.level)}


def pooled_auc(hist8: np.ndarray) -> float:
    """Pixel AUC of pooled ``(n, 2, 256)`` per-image (pos, neg) counts per grey level (ties count half)."""
    pos, neg = hist8[:, 0].sum(axis=0)[::-1].astype(np.float64), hist8[:, 1].sum(axis=0)[::-1].astype(np.float64)
    neg_above = np.cumsum(neg) - neg  # negatives strictly above each level (levels from high to low)
    return float(((neg.sum() - neg_above - neg) * pos).sum() + 0.5 * (neg * pos).sum()) / (pos.sum() * neg.sum())


def paired_auc(a: np.ndarray, b: np.ndarray) -> dict:
    """Pooled pixel AUC of A and B, and B - A with the bootstrap's SE and interval over the images."""
    idx = resample_indices(a.shape[0], BOOTSTRAP)
    d = np.asarray([pooled_auc(b[i]) - pooled_auc(a[i]) for i in idx])
    return {"n": int(a.shape[0]), "a": pooled_auc(a), "b": pooled_auc(b), "diff": pooled_auc(b) - pooled_auc(a),
            "se": float(d.std(ddof=1)), "interval": percentile_interval(d, BOOTSTRAP.level)}


def paired(a: np.ndarray, b: np.ndarray) -> dict:
    """Means of ``a`` and ``b`` and of ``b - a`` over the items where both are finite, with the
    difference's standard error and bootstrap interval."""
    keep = np.isfinite(a) & np.isfinite(b)
    d = (b - a)[keep]
    if d.size < 2:
        return {"n": int(d.size)}
    idx = resample_indices(d.size, BOOTSTRAP)
    return {"n": int(d.size), "a": float(a[keep].mean()), "b": float(b[keep].mean()), "diff": float(d.mean()),
            "se": standard_error(d),
            "interval": percentile_interval(d[idx].mean(axis=1), BOOTSTRAP.level)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", help="bench_unseen.py --json of the reference run (A)")
    ap.add_argument("b", help="bench_unseen.py --json of the other run (B)")
    ap.add_argument("--method", default="weakloc default", help="row of both tables (default 'weakloc default')")
    args = ap.parse_args()
    a, b = _load(args.a, args.method), _load(args.b, args.method)
    if a["images"] != b["images"] or a["source"] != b["source"] or a["f1"].size != b["f1"].size \
            or a["flagged"].size != b["flagged"].size:
        sys.exit(f"{args.b}: not the same images as {args.a} ({b['source']}, {b['images']} vs "
                 f"{a['source']}, {a['images']})")
    print(f"{args.method} on {a['source']} ({a['images']} images); A: {a['set'] or 'as configured'}, "
          f"B: {b['set'] or 'as configured'}")
    print("| measure | n | A | B | B - A | SE | 95 % interval | diff / SE |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, x, y, pct in [("pixel F1 @0.5 (forgeries)", a["f1"], b["f1"], False),
                            ("flagged on authentic", a["flagged"], b["flagged"], True),
                            ("authentic > 1 % flagged", (a["flagged"] > 0.01) * 1.0, (b["flagged"] > 0.01) * 1.0,
                             True),
                            ("pixel AUC, pooled (forgeries)", a["hist8"], b["hist8"], False),
                            ("image AUC", a["image_scores"], b["image_scores"], False)]:
        if name == "image AUC":
            if a["labels"].size == 0 or not np.array_equal(a["labels"], b["labels"]):
                print(f"| {name} | 0 | n/a | n/a | n/a | n/a | n/a | n/a |")
                continue
            r = paired_image_auc(a["labels"], x, y)
            z = r["diff"] / r["se"] if r["se"] > 0 else float("nan")
            print(f"| {name} | {r['n']} | {r['a']:.4f} | {r['b']:.4f} | {r['diff']:.4f} | {r['se']:.4f} | "
                  f"[{r['interval'][0]:.4f}, {r['interval'][1]:.4f}] | {z:+.2f} |")
            continue
        if x.ndim == 3 and (x.shape[0] == 0 or x.shape != y.shape):
            print(f"| {name} | 0 | n/a | n/a | n/a | n/a | n/a | n/a |")
            continue
        r = paired_auc(x, y) if x.ndim == 3 else paired(x, y)
        if "diff" not in r:
            print(f"| {name} | {r['n']} | n/a | n/a | n/a | n/a | n/a | n/a |")
            continue
        f = (lambda v: f"{100 * v:.2f} %") if pct else (lambda v: f"{v:.4f}")
        z = r["diff"] / r["se"] if r["se"] > 0 else float("nan")
        print(f"| {name} | {r['n']} | {f(r['a'])} | {f(r['b'])} | {f(r['diff'])} | {f(r['se'])} | "
              f"[{f(r['interval'][0])}, {f(r['interval'][1])}] | {z:+.2f} |")


if __name__ == "__main__":
    main()
