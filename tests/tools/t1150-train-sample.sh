#!/usr/bin/env bash
# The end-to-end path of the base stage: rhd-train trains a small base model on the two bundled
# fitted avatars (tests/data/train-c8: stage-1 fits of tests/data/mini, 32 x 32 planes of 8
# channels, with the decoder of that fit; area-downsampled to the model's 16 x 16) paired with
# rhd-encode features of their portraits (view 0, 64 px, random encoder weights); rhd-sample samples
# a triplane for each training portrait; rhd-render renders the sample and both fits (at 16 x 16)
# with that decoder from the portrait's camera (view 0). Checked: the samples are finite
# [3,8,16,16] planes with the data's spread (std within STD_LO..STD_HI of the fits': a noise-like
# sample, as an undertrained or too narrow network gives, has several times it), the renders are
# not empty, each portrait's sample renders close to its own avatar (PSNR(sample, own fit) >=
# OWN_MIN) and clearly closer to it than to the other one (own > other + MARGIN): the portrait
# decides the avatar. The network is 32 channels wide over the planes' 8 (the former 16-channel
# network over 32-channel planes stalled at eps MSE ~0.55 and sampled noise; tools/rhd-train.md
# "Small networks") and predicts x0 (--pred xstart): trained to predict eps, as the original, the
# same budget gave samples with the data's spread that did not depend on the portrait (continued to
# 2000 steps, both portraits sampled avatar_101's look: own/other 6.97/12.23 and 12.25/6.98 dB at
# 1000 steps), since a small network's eps error is multiplied by sqrt((1-abar)/abar) on the way
# to x0 (tools/rhd-train.md "Prediction target").
. "$RHD_ROOT/tests/tools/lib.sh"
PY=${RHD_PY:-python3}
FIX=$RHD_ROOT/tests/data/train-c8 MINI=$RHD_ROOT/tests/data/mini
# the training (about 0.25 s a step at batch 2 on 2 threads; the whole test about 3.5 min of CPU)
STEPS=400
MARGIN=5 OWN_MIN=18 STD_LO=0.5 STD_HI=2.5
MEASURED="seed 0, 400 steps: sample std 0.267 / 0.151 (fits 0.275 / 0.165); avatar_100 own 23.45 / other 12.20 dB, avatar_101 own 24.10 / other 10.26 dB; fit vs fit 11.14 dB; training and sampling seed 1: own 28.60 / other 11.21 dB, own 26.25 / other 11.42 dB; 3.5 min CPU"
export OPENBLAS_NUM_THREADS=1   # its own threads would only spin beside --threads 1

cd "$T"
mkdir -p tri && cp "$FIX"/avatar_10[01].npy tri/
run rhd-encode -q --weights random:1 --data "$MINI" --out-dir feat --size 64 --batch 2 --threads 1
expect_rc 0 "rhd-encode: features of the two portraits (view 0, 64 px, random weights)"
echo '{"image_size": 16, "in_channels": 8, "out_channels": 16, "latent_size": 8, "patch": 8, "model_channels": 32, "channel_mult": [1, 2], "groups": 8, "num_head_channels": 16, "attention_resolutions": [16, 8]}' > small.json
run rhd-train --model base --preset small --model-config small.json --threads 2 -q --triplanes tri --features feat \
    --pred xstart --batch 2 --steps $STEPS --lr 2e-3 --uncond-p 0 --dropout 0 --log-every 50 --save-every $STEPS -o run
expect_rc 0 "rhd-train: $STEPS steps at batch 2 (32 channels over 8, lr 2e-3, no condition dropout, no dropout)"
if printf '%s' "$err" | grep -q model_channels; then _tap 1 "a narrow-network warning for a config 32 wide over 8"; else _tap 0 "no narrow-network warning for this config"; fi
# the raw parameters (the EMA at 0.9999 is still the initialisation after so few steps);
# guidance 1: the model never saw the null condition
run rhd-sample -q --base run/checkpoint.safetensors --weights model --guidance 1 --batch 2 --threads 1 -o smp \
    feat/avatar_100.safetensors feat/avatar_101.safetensors
expect_rc 0 "rhd-sample: both training portraits (DDIM dpm, S = 10, eta 1)"
# the fits at the model's 16 x 16 (2 x 2 means: the trainer's area filter), to render beside the samples
"$PY" -c "
import numpy as np
for a in ['avatar_100', 'avatar_101']:
    p = np.load(f'tri/{a}.npy').astype(np.float32)
    np.save(f'fit16_{a}.npy', p.reshape(3, 1, 8, 16, 2, 16, 2).mean(axis=(4, 6)).astype(np.float32))
"
WHAT="samples: finite [3,8,16,16] planes, std within $STD_LO..$STD_HI x the fit's (not noise)"
if msg=$("$PY" - "$STD_LO" "$STD_HI" <<'EOF2' 2>&1
import sys, numpy as np
from safetensors.numpy import load_file
lo, hi = float(sys.argv[1]), float(sys.argv[2])
ok = True
for a in ['avatar_100', 'avatar_101']:
    p = load_file(f'smp/{a}.safetensors')['planes']
    f = np.load(f'fit16_{a}.npy')[:, 0]
    r = p.std() / f.std()
    print(f'# {a}: sample std {p.std():.3f}, fit std {f.std():.3f} (ratio {r:.2f}), shape {p.shape}')
    ok &= p.shape == (3, 8, 16, 16) and bool(np.isfinite(p).all()) and lo <= r <= hi
sys.exit(0 if ok else 1)
EOF2
); then printf '%s\n' "$msg"; _tap 0 "$WHAT"; else printf '%s\n' "$msg"; _tap 1 "$WHAT"; fi
R="--decoder $FIX/decoder.safetensors --views 0 --grid-size 32 --max-steps 64 --threads 1 -q"
ok=0
for a in avatar_100 avatar_101; do
    o=avatar_100; [ $a = avatar_100 ] && o=avatar_101
    for s in "own:fit16_$a.npy" "other:fit16_$o.npy" "smp:smp/$a.safetensors"; do
        "$RHD_BIN/rhd-render" $R --data "$MINI/$a" -o "r/$a/${s%%:*}" "${s#*:}" >/dev/null 2>r.err || ok=1
    done
done
[ $ok = 0 ] && _tap 0 "rhd-render: samples and fitted triplanes (16 x 16) from each portrait's camera" || { _tap 1 "rhd-render failed"; sed 's/^/#   /' r.err; }
WHAT="renders not empty, PSNR(sample, own fit) >= $OWN_MIN dB, own > other + $MARGIN dB for each portrait (measured $MEASURED)"
if msg=$("$PY" - "$MARGIN" "$OWN_MIN" <<'EOF2' 2>&1
import sys, numpy as np, png
margin, own_min = float(sys.argv[1]), float(sys.argv[2])
def rd(p):
    w, h, rows, _ = png.Reader(filename=p).asRGB8()
    return np.array([list(r) for r in rows], np.float64).reshape(h, w, 3) / 255
psnr = lambda a, b: 10 * np.log10(1 / max(((a - b) ** 2).mean(), 1e-12))
bad = []
for a in ['avatar_100', 'avatar_101']:
    s, own, oth = (rd(f'r/{a}/{k}/rgb_0000.png') for k in ['smp', 'own', 'other'])
    if not (s < 0.99).any(): bad.append(f'{a}: the sample renders empty (all background)')
    p_own, p_oth = psnr(s, own), psnr(s, oth)
    print(f'# {a}: PSNR(sample, own fit) {p_own:.2f} dB, PSNR(sample, other fit) {p_oth:.2f} dB, PSNR(own fit, other fit) {psnr(own, oth):.2f} dB')
    if not p_own > p_oth + margin: bad.append(f'{a}: own {p_own:.2f} not above other {p_oth:.2f} + {margin}')
    if not p_own >= own_min: bad.append(f'{a}: own fit {p_own:.2f} < {own_min}')
for b in bad: print('# ' + b)
sys.exit(1 if bad else 0)
EOF2
); then printf '%s\n' "$msg"; _tap 0 "$WHAT"; else printf '%s\n' "$msg"; _tap 1 "$WHAT"; fi
done_testing
