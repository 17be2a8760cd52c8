#!/usr/bin/env bash
# The released model's candidate (docs/model-card.md): `make release-model` [RELEASE=release].
#
# Trains configs/release.yaml (over config.yaml) once, then scores it and the model that ships
# now (weakloc.release) on the candidate's validation split (photos no training image uses):
# image AUC with its interval and the fused map's calibrated F1, paired per image. A candidate
# ships only if it beats the shipped model there by more than the noise (docs/model-card.md);
# to ship it, copy $RELEASE/wcbnet.pt to src/weakloc/models/ and pin its sha256 in
# src/weakloc/release.py. Needs the network for the photo pool's packages (apt-get download).
set -euo pipefail
OUT=${1:-release}
BIN=${BIN:-.venv/bin}
CONFIG=(--config config.yaml --config configs/release.yaml)
mkdir -p "$OUT"
"$BIN/weakloc" data photos --out "$OUT/photos"
"$BIN/weakloc" data prepare "${CONFIG[@]}" --photo-pool "$OUT/photos" --out "$OUT/data"
start=$(date +%s)
"$BIN/weakloc" train "${CONFIG[@]}" --manifest "$OUT/data/manifest.csv" --seed 0 --out "$OUT/wcbnet.pt" \
    --log "$OUT/train_log.csv"
echo "train_release: trained in $(( ($(date +%s) - start) / 60 )) min; $(sha256sum "$OUT/wcbnet.pt")"
shipped=$("$BIN/python" -c "from weakloc.release import released_checkpoint; print(released_checkpoint())")
for name in shipped candidate; do
    ckpt=$shipped; [ "$name" = candidate ] && ckpt=$OUT/wcbnet.pt
    "$BIN/python" benchmarks/bench_unseen.py --checkpoint "$ckpt" --config config.yaml --manifest "$OUT/data/manifest.csv" \
        --split val --n-forged 180 --n-authentic 180 --variants fused/calibrated --baselines \
        --json "$OUT/val_$name.json" | tee "$OUT/val_$name.md"
done
"$BIN/python" benchmarks/paired.py "$OUT/val_shipped.json" "$OUT/val_candidate.json" --method "weakloc fused/calibrated" \
    | tee "$OUT/val_paired.md"
