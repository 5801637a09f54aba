#!/usr/bin/env bash
# rhd-sample: a small-config base checkpoint (the PyTorch reference network with PyTorch's init,
# torch.save'd and converted by pipelines/convert_checkpoint.py) samples random features:
# bit-identical across batch sizes and thread counts (Philox keyed by portrait name), --save-noise
# then --noise reproduces the sample bit for bit on another batch and thread count, one JSON line
# per portrait, documented metadata, --npy layout, skip-if-newer and --force, sharding, and exact
# errors (exit 1, no outputs) for bad features, a checkpoint of the wrong kind, a noise file short
# of a step; usage errors exit 2. The numbers themselves are checked against PyTorch in
# tests/models/test_sample.c. Steps are few (--steps 2) to keep the test short.
. "$RHD_ROOT/tests/tools/lib.sh"
PY=${RHD_PY:-python3}
mkdir -p "$T/m"
# a tiny base (R 8, 8 channels) and upsampler (8 -> 32): every case runs in seconds
cp "$RHD_ROOT/tests/data/sample/base.json" "$T/m/"
cp "$RHD_ROOT/tests/data/sample/upsample.json" "$T/m/"
"$PY" "$RHD_ROOT/tests/ref/ref_sample.py" make "$T/m" base 5 >/dev/null &&
  "$PY" "$RHD_ROOT/tests/ref/ref_sample.py" make "$T/m" upsample 6 >/dev/null &&
  "$PY" "$RHD_ROOT/pipelines/convert_checkpoint.py" "$T/m/base.pt" --config "$T/m/base.json" -o "$T/base.safetensors" >/dev/null &&
  "$PY" "$RHD_ROOT/pipelines/convert_checkpoint.py" "$T/m/upsample.pt" --model upsample --config "$T/m/upsample.json" -o "$T/up.ckpt.safetensors" >/dev/null
check "tiny base and upsampler checkpoints from the reference networks (convert_checkpoint.py)" test -f "$T/up.ckpt.safetensors"
"$PY" "$RHD_ROOT/tests/tools/tiny_features.py" --bad "$T/bad.safetensors" 7 "$T" p0 p1 p2
F="$T/p0.safetensors $T/p1.safetensors"
S="--base $T/base.safetensors --steps 2 --seed 3"

same() { "$PY" -c "
import sys, numpy as np
from safetensors.numpy import load_file
for n in ['p0', 'p1']:
    a, b = load_file(f'{sys.argv[1]}/{n}.safetensors')['planes'], load_file(f'{sys.argv[2]}/{n}.safetensors')['planes']
    R = int(sys.argv[3])
    assert a.shape == (3, 8, R, R) and np.isfinite(a).all() and a.std() > 0, a.shape
    d = int((a.view(np.uint32) != b.view(np.uint32)).sum())
    assert d == 0, f'{n}: {d} values differ, max {np.abs(a - b).max()}'
" "$1" "$2" "${3:-8}"; }

# ---- Philox: the batch and the thread count do not matter ------------------------------------
OMP_NUM_THREADS=2 run rhd-sample $S --batch 2 --threads 2 -o "$T/a" $F
expect_rc 0 "two portraits, batch 2, 2 threads"
check "one JSON line per portrait (name, seconds, output)" "$PY" -c "
import json, sys
ls = [json.loads(l) for l in sys.argv[1].splitlines()]
assert [l['name'] for l in ls] == ['p0', 'p1'] and all(l['seconds'] > 0 and l['output'].endswith(l['name'] + '.safetensors') for l in ls)
" "$out"
OMP_NUM_THREADS=1 run rhd-sample $S --batch 1 --threads 1 -o "$T/b" $F
expect_rc 0 "the same, batch 1, 1 thread"
check "batch 2 / 2 threads and batch 1 / 1 thread give the same bits (Philox by portrait name)" same "$T/a" "$T/b"
# --tf32 and --bf16 are CUDA modes (tensor cores): on the CPU they change nothing
OMP_NUM_THREADS=1 run rhd-sample $S --batch 1 --threads 1 --device cpu --tf32 -o "$T/tf" $F
expect_rc 0 "--tf32 on the CPU"
check "--tf32 on the CPU: the same bits" same "$T/a" "$T/tf"
OMP_NUM_THREADS=1 run rhd-sample $S --batch 1 --threads 1 --device cpu --bf16 -o "$T/bf" $F
expect_rc 0 "--bf16 on the CPU"
check "--bf16 on the CPU: the same bits" same "$T/a" "$T/bf"
# unguided (one network row per portrait, an odd count at batch 1) and the two-stage path with the
# upsampler: the same bits on any batch (linear layers are computed row by row, kernels/linear.c)
for v in "g1:--guidance 1" "up:--guidance 1 --upsample $T/up.ckpt.safetensors --up-steps 2"; do
    OMP_NUM_THREADS=2 run rhd-sample $S ${v#*:} --batch 2 --threads 2 -o "$T/${v%%:*}-2" $F
    r2=$rc
    OMP_NUM_THREADS=1 run rhd-sample $S ${v#*:} --batch 1 --threads 1 -o "$T/${v%%:*}-1" $F
    check "${v%%:*} (g1: unguided; up: unguided + upsampler): batch 2 / 2 threads and batch 1 / 1 thread give the same bits (exit $r2, $rc)" same "$T/${v%%:*}-2" "$T/${v%%:*}-1" "$([ ${v%%:*} = up ] && echo 32 || echo 8)"
done
check "metadata: triplane kind, checkpoint sha256, sampler, steps, eta, guidance, seed" "$PY" -c "
import json, sys, hashlib
from safetensors import safe_open
with safe_open('$T/a/p0.safetensors', 'np') as f:
    m = f.metadata()
c = json.loads(m['rhd.config'])
sha = hashlib.sha256(open('$T/base.safetensors', 'rb').read()).hexdigest()
b = c['base']
assert m['rhd.kind'] == 'triplane' and m['rhd.avatar'] == 'p0' and m['rhd.seed'] == '3', m
assert b['checkpoint_sha256'] == 'sha256:' + sha and b['sampler'] == 'ddim-dpm' and b['steps'] == 2
assert b['eta'] == 1 and b['guidance'] == 1.3 and b['clip'] is True and b['weights'] == 'model', b
"

# ---- --save-noise, then --noise on another batch / thread count ------------------------------
run rhd-sample $S --batch 2 --save-noise "$T/n.safetensors" -o "$T/c" $F
expect_rc 0 "--save-noise"
check "the saved noise holds x_T, z.0, z.1, u for two named rows" "$PY" -c "
import json
from safetensors import safe_open
with safe_open('$T/n.safetensors', 'np') as f:
    assert sorted(f.keys()) == ['u', 'x_T', 'z.0', 'z.1'], list(f.keys())
    assert f.get_tensor('x_T').shape == (2, 8, 8, 24) and f.get_tensor('u').shape == (2, 4, 16, 16)
    assert json.loads(f.metadata()['rhd.names']) == ['p0', 'p1']
"
run rhd-inspect "$T/n.safetensors"
expect_rc 0 "rhd-inspect: the noise file"
expect_out "kind: noise \(schema ok\)" "its kind (noise) is known and its schema passes"
"$PY" -c "
from safetensors.numpy import load_file, save_file
from safetensors import safe_open
with safe_open('$T/n.safetensors', 'np') as f: meta = f.metadata()
t = load_file('$T/n.safetensors'); t['x_T'] = t['x_T'].astype('float16')
save_file(t, '$T/badnoise.safetensors', metadata=meta)
"
run rhd-inspect "$T/badnoise.safetensors"
expect_rc 1 "rhd-inspect: a noise file with an F16 x_T"
expect_err "x_T" "the schema error names the tensor"
cat > "$T/job.json" <<EOF2
{"stage": "base", "cfg": "$T/m/base.json", "ckpt": "$T/base.safetensors", "noise": "$T/n.safetensors",
 "features": ["$T/p0.safetensors", "$T/p1.safetensors"], "guidance": 1.3, "eta": 1, "steps": 2, "T": 1000,
 "schedule": "cosine_light", "clip": true, "C": 8}
EOF2
"$PY" "$RHD_ROOT/tests/ref/ref_sample.py" sample "$T" >/dev/null
check "another implementation given the weights and the saved noise reproduces the samples (PyTorch, ref_sample.py: max abs < 1e-4)" "$PY" -c "
import numpy as np
from safetensors.numpy import load_file
y = np.load('$T/y.npy')
for i, n in enumerate(['p0', 'p1']):
    a = load_file(f'$T/c/{n}.safetensors')['planes']
    d = np.abs(a - np.stack(np.split(y[i], 3, axis=2))).max()
    print(f'# {n}: max abs {d:.3g}')
    assert d < 1e-4, d
"
OMP_NUM_THREADS=1 run rhd-sample --base "$T/base.safetensors" --steps 2 --noise "$T/n.safetensors" --batch 1 --threads 1 -o "$T/d" "$T/p1.safetensors" "$T/p0.safetensors"
expect_rc 0 "--noise, batch 1, 1 thread, inputs in another order (rows by rhd.names)"
check "--save-noise then --noise reproduces the samples bit for bit" same "$T/c" "$T/d"
check "the saved noise run equals the plain seeded run" same "$T/a" "$T/c"

# ---- outputs: skip, --force, --npy, sharding --------------------------------------------------
run rhd-sample $S -o "$T/a" $F
check "up-to-date outputs are skipped (no JSON lines)" test -z "$out"
cp -r "$T/a" "$T/a_opts"
run rhd-sample --base "$T/base.safetensors" --steps 3 --seed 3 -o "$T/a_opts" $F
expect_err "a_opts/p0.safetensors: made with other options, sampled again" "an output made with other options (--steps) is sampled again"
expect_out '"name":"p1"' "... and reported on stdout"
mkdir -p "$T/l" && printf '# portraits\n../p0.safetensors\n\n' > "$T/l/list.txt"
run rhd-sample $S --force -o "$T/a" --list "$T/l/list.txt"
check "--force samples again (--list, paths relative to the list's folder)" "$PY" -c "
import json, sys
assert [json.loads(l)['name'] for l in sys.argv[1].splitlines()] == ['p0'], sys.argv[1]" "$out"
run rhd-sample $S --npy -o "$T/npy" "$T/p0.safetensors"
check "--npy: float16 [3,1,8,8,8] equal to the safetensors sample in fp16" "$PY" -c "
import numpy as np
from safetensors.numpy import load_file
a = np.load('$T/npy/p0.npy'); b = load_file('$T/a/p0.safetensors')['planes']
assert a.dtype == np.float16 and a.shape == (3, 1, 8, 8, 8), (a.dtype, a.shape)
assert (a[:, 0] == b.astype(np.float16)).all()
"
OMPI_COMM_WORLD_RANK=1 OMPI_COMM_WORLD_SIZE=2 run rhd-sample $S -o "$T/shard" $F
check "rank 1 of 2 (from \$OMPI_COMM_WORLD_*) samples only the second portrait" test "$(ls "$T/shard")" = "p1.safetensors"

# ---- a checkpoint in the contract's layout (rhd-train's): config {"model", "diffusion", "train"},
# parameters, ema.*, adam.*, train.* -----------------------------------------------------------------
"$PY" -c "
import json
from safetensors.numpy import load_file, save_file
t = load_file('$T/base.safetensors')
out = {k: v + 0.01 for k, v in t.items()}
out.update({'ema.' + k: v for k, v in t.items()})
out.update({'adam.m.' + k: 0 * v for k, v in t.items()})
out['train.history'] = t['time_embed.0.bias'][:4] * 0
cfg = {'model': json.load(open('$T/m/base.json')), 'train': {'lr': 1e-4},
       'diffusion': {'steps': 1000, 'schedule': 'cosine_light', 'pred': 'eps', 'var': 'learned_range', 'time_scale': 0}}
save_file(out, '$T/train.safetensors', metadata={'rhd.kind': 'checkpoint', 'rhd.version': '1', 'rhd.model': 'base',
          'rhd.step': '5', 'rhd.ema_rates': '0.9999', 'rhd.config': json.dumps(cfg)})
"
run rhd-sample --base "$T/train.safetensors" --steps 2 --seed 3 -o "$T/tr" $F
expect_rc 0 "a contract-layout checkpoint (ema.*, adam.*, train.*, config with model + diffusion)"
check "it samples with the EMA by default: equal to the plain checkpoint holding those weights" same "$T/a" "$T/tr"
run rhd-sample --base "$T/train.safetensors" --steps 2 --weights ema1 -o "$T/tr1" $F
expect_rc 1 "--weights ema1 without a second rate: exit 1"
expect_err "no 'ema1.\\*' tensors for --weights ema1 \\(EMA rates in the file: 0.9999\\)" "names the rates"
# rhd-inspect checks such a checkpoint as rhd-sample loads it: rhd.config against the tensors of the
# parameter set and of the EMA set
run rhd-inspect --no-stats "$T/train.safetensors"
expect_rc 0 "rhd-inspect: the contract-layout checkpoint passes"
"$PY" -c "
import json
from safetensors.numpy import load_file, save_file
from safetensors import safe_open
with safe_open('$T/train.safetensors', 'np') as f: m = f.metadata()
t = load_file('$T/train.safetensors')
e = dict(t); e['ema.input_blocks.0.0.weight'] = e['ema.input_blocks.0.0.weight'][:1]
save_file(e, '$T/ckema.safetensors', metadata=m)
x = dict(t); x['stray.weight'] = t['time_embed.0.bias']
save_file(x, '$T/ckextra.safetensors', metadata=m)
"
run rhd-inspect --no-stats "$T/ckema.safetensors"
expect_rc 1 "rhd-inspect: a checkpoint whose EMA tensor has another shape: exit 1"
expect_err "ckema.safetensors.*input_blocks.0.0.weight" "names the file and the tensor"
run rhd-inspect --no-stats "$T/ckextra.safetensors"
expect_rc 1 "rhd-inspect: a checkpoint with a tensor the config lacks: exit 1"
expect_err "ckextra.safetensors: tensor 'stray.weight' is not a parameter of the network that rhd.config describes" "names the tensor"

# ---- bad input -------------------------------------------------------------------------------
run rhd-sample $S -o "$T/e1" "$T/p0.safetensors" "$T/bad.safetensors"
expect_rc 1 "wrong-shaped features: exit 1"
expect_err "bad.safetensors: tensor 'ms_feature.1' has shape \[16,2,4\], expected \[16,4,4\]" "names the file, tensor, shapes"
check "no partial outputs" test ! -e "$T/e1/p0.safetensors"
run rhd-sample $S -o "$T/e2" "$T/missing.safetensors"
expect_rc 1 "missing features: exit 1"
expect_err "missing.safetensors" "names the missing file"
run rhd-sample --base "$T/base.safetensors" --steps 3 --noise "$T/n.safetensors" -o "$T/e3" $F
expect_rc 1 "a noise file short of a step: exit 1"
expect_err "n.safetensors: tensor 'z.2' is missing" "names the file and the tensor"
check "no outputs" test ! -e "$T/e3/p0.safetensors"
"$PY" -c "
from safetensors.numpy import load_file, save_file
from safetensors import safe_open
with safe_open('$T/n.safetensors', 'np') as f: meta = f.metadata()
t = load_file('$T/n.safetensors'); t['z.1'][1, 0, 0, 5] = float('nan')
save_file(t, '$T/nannoise.safetensors', metadata=meta)
"
run rhd-sample --base "$T/base.safetensors" --steps 2 --noise "$T/nannoise.safetensors" -o "$T/e5" $F
expect_rc 1 "a noise file with a NaN: exit 1"
expect_err "nannoise.safetensors.*z.1" "names the file and the tensor"
check "no outputs" test ! -e "$T/e5/p0.safetensors"
"$PY" -c "
from safetensors.numpy import load_file, save_file
from safetensors import safe_open
with safe_open('$T/n.safetensors', 'np') as f: meta = f.metadata()
meta['rhd.names'] = '[\"p1\", \"p1\"]'
save_file(load_file('$T/n.safetensors'), '$T/dupnoise.safetensors', metadata=meta)
"
run rhd-sample --base "$T/base.safetensors" --steps 2 --noise "$T/dupnoise.safetensors" -o "$T/e6" $F
expect_rc 1 "a noise file naming a portrait twice: exit 1"
expect_err "dupnoise.safetensors: rhd.names lists 'p1' twice \\(rows 0 and 1\\)" "names the file, the portrait and the rows"
# a finite noise so large that the sample overflows: said, exit 1, that portrait not written
"$PY" -c "
from safetensors.numpy import load_file, save_file
from safetensors import safe_open
with safe_open('$T/n.safetensors', 'np') as f: meta = f.metadata()
t = load_file('$T/n.safetensors'); t['x_T'][0] = 3e38
save_file(t, '$T/bignoise.safetensors', metadata=meta)
"
run rhd-sample --base "$T/base.safetensors" --steps 2 --noise "$T/bignoise.safetensors" -o "$T/e6" $F
expect_rc 1 "a sample that overflows to NaN: exit 1"
expect_err "p0: the sample holds [0-9]+ non-finite values of [0-9]+ .*nothing written" "names the portrait and says why"
check "no output for it, the other portrait written" test ! -e "$T/e6/p0.safetensors" -a -s "$T/e6/p1.safetensors"
run rhd-sample $S --up-steps 3 -o "$T/e9" $F
expect_rc 2 "--up-steps without --upsample"
expect_err "--up-steps applies to the upsampling stage, expected --upsample CKPT" "says so"
run rhd-sample $S --sampler ddim --respace ddim2 -o "$T/e9" $F
expect_rc 2 "--respace and --steps together"
run rhd-sample $S --noise "$T/p1.safetensors" -o "$T/e9" $F
expect_rc 1 "a features file as --noise"
expect_err "--noise .*p1.safetensors: an rhd 'features' file, expected a noise file" "names the kinds"
run rhd-sample --base "$T/base.safetensors" --sampler ddpm --steps 1 -o "$T/e9" $F
expect_rc 2 "ddpm with one step"
expect_err "--steps 1 with --sampler ddpm: .*expected at least 2" "names --steps and the sampler"
run rhd-sample $S --weights foo -o "$T/e9" $F
expect_rc 2 "--weights foo: a usage error"
run rhd-sample $S --time-scale 1e39 -o "$T/e7" $F
expect_rc 2 "--time-scale 1e39 (beyond fp32): a usage error"
run rhd-sample $S --save-noise /dev/null -o "$T/e8" $F
expect_rc 1 "--save-noise onto a device file"
expect_err "--save-noise /dev/null: is not a regular file" "refused, not replaced"
check "/dev/null is still a device" test -c /dev/null
run rhd-sample --base "$T/up.ckpt.safetensors" -o "$T/e4" $F
expect_rc 1 "an upsampler checkpoint as --base: exit 1"
expect_err "rhd.model is 'upsample', expected 'base'" "names the kinds"
run rhd-sample $S $F
expect_rc 2 "no -o: usage error"
run rhd-sample $S --rank 2 --world 2 -o "$T/e5" $F
expect_rc 2 "--rank out of range: usage error"
run rhd-sample $S -o "$T/e6" "$T/p0.safetensors" "$T/e6/../p0.safetensors"
expect_rc 2 "two inputs with one name: usage error"

# ---- the upsampler stage and the examples of --help --------------------------------------------
run rhd-sample $S --upsample "$T/up.ckpt.safetensors" --up-steps 2 --save-trajectory -o "$T/hr" "$T/p0.safetensors"
expect_rc 0 "base + upsampler (8 -> 32)"
check "the upsampled triplane [3,8,32,32]; the trajectory x0 [2,3,8,8,8] and up.x0 [2,3,8,32,32]" "$PY" -c "
from safetensors.numpy import load_file
import numpy as np
a = load_file('$T/hr/p0.safetensors')['planes']; t = load_file('$T/hr/p0.trajectory.safetensors')
assert a.shape == (3, 8, 32, 32) and np.isfinite(a).all() and np.abs(a).max() <= 1, a.shape
assert t['x0'].shape == (2, 3, 8, 8, 8) and t['up.x0'].shape == (2, 3, 8, 32, 32)
"

# ---- --upsample with --low-res DIR: the base samples read from files --------------------------
U="--upsample $T/up.ckpt.safetensors --up-steps 2 --seed 3"
run rhd-sample $S $U --save-noise "$T/un2.safetensors" -o "$T/hr2" $F
expect_rc 0 "base + upsampler, two portraits, --save-noise"
run rhd-sample $U --low-res "$T/a" --save-noise "$T/un3.safetensors" -o "$T/hr3" $F
expect_rc 0 "--upsample --low-res DIR (DIR: the base samples of --base alone) without --base"
mkdir -p "$T/lrnpy"
"$PY" -c "
import numpy as np
from safetensors.numpy import load_file
t = load_file('$T/a/p1.safetensors')['planes']           # [3,C,R,R] -> the rolled .npy [C,R,3R]
np.save('$T/lrnpy/p1.npy', np.concatenate(list(t), axis=2).astype(np.float32))
"
cp "$T/a/p0.safetensors" "$T/lrnpy/"
run rhd-sample $U --low-res "$T/lrnpy" --seed 99 --noise "$T/un3.safetensors" -o "$T/hr4" $F
expect_rc 0 "--low-res with a rolled .npy [C,R,3R], --noise of the --low-res run, another --seed"
check "base+upsample and --low-res give the same bits (planes [3,8,32,32]; the up.* noise too); .npy and --noise replay them" "$PY" -c "
import json, numpy as np
from safetensors.numpy import load_file
from safetensors import safe_open
for n in ['p0', 'p1']:
    a, b, c = (load_file(f'$T/{d}/{n}.safetensors')['planes'] for d in ['hr2', 'hr3', 'hr4'])
    assert a.shape == (3, 8, 32, 32) and np.isfinite(a).all() and a.std() > 0, a.shape
    for x, what in [(b, '--low-res'), (c, '--low-res .npy --noise')]:
        d = int((a.view(np.uint32) != x.view(np.uint32)).sum())
        assert d == 0, f'{n} {what}: {d} values differ, max {np.abs(a - x).max()}'
    print(f'# {n}: 3 x {a.size} values identical, std {a.std():.4f}')
n2, n3 = load_file('$T/un2.safetensors'), load_file('$T/un3.safetensors')
assert sorted(n3) == sorted(k for k in n2 if k.startswith('up.')) and len(n3) == 4, (sorted(n2), sorted(n3))
for k in n3: assert (n2[k] == n3[k]).all(), k
with safe_open('$T/hr3/p0.safetensors', 'np') as f: c = json.loads(f.metadata()['rhd.config'])
assert 'base' not in c and c['low_res'] == '$T/a/p0.safetensors' and c['upsample']['steps'] == 2, c
assert c['upsample']['low_res_precision'] == 'fp16', c
"
mkdir -p "$T/lrbad"
"$PY" -c "
import numpy as np
from safetensors.numpy import load_file, save_file
t = load_file('$T/a/p0.safetensors')['planes']
save_file({'planes': t[:, :4].copy()}, '$T/lrbad/p0.safetensors', metadata={'rhd.kind': 'triplane', 'rhd.version': '1'})
t = t.copy(); t[1, 2, 3, 4] = float('nan')
save_file({'planes': t}, '$T/lrbad/p1.safetensors', metadata={'rhd.kind': 'triplane', 'rhd.version': '1'})
t[1, 2, 3, 4] = 7e4
save_file({'planes': t}, '$T/lrbad/p3.safetensors', metadata={'rhd.kind': 'triplane', 'rhd.version': '1'})
"
run rhd-sample $U --low-res "$T/lrbad" -o "$T/e7" "$T/p0.safetensors"
expect_rc 1 "a low-res triplane of 4 channels: exit 1"
expect_err "lrbad/p0.safetensors: a low-res triplane \\[3,4,8,8\\], expected \\[3,8,8,8\\]" "names the file and the shapes"
run rhd-sample $U --low-res "$T/lrbad" -o "$T/e7" "$T/p1.safetensors"
expect_rc 1 "a low-res triplane with a NaN: exit 1"
expect_err "lrbad/p1.safetensors" "names the file"
cp "$T/p0.safetensors" "$T/p3.safetensors"
run rhd-sample $U --low-res "$T/lrbad" -o "$T/e7" "$T/p3.safetensors"
expect_rc 1 "a low-res value beyond float16's range (70000): exit 1"
expect_err "lrbad/p3.safetensors: value 70000 at index .* outside float16's range" "names the file, the value and the way out"
expect_err "low-res-precision fp32" "... and the option that keeps it"
run rhd-sample $U --low-res "$T/lrbad" --low-res-precision fp32 -o "$T/e9" "$T/p3.safetensors"
expect_rc 0 "... which --low-res-precision fp32 samples"
check "... and records" grep -qF '\"low_res_precision\":\"fp32\"' "$T/e9/p3.safetensors"
run rhd-sample $U --low-res "$T/lrbad" -o "$T/e7" "$T/p2.safetensors"
expect_rc 1 "no low-res file for a portrait: exit 1"
expect_err "no p2.safetensors or p2.npy for portrait 'p2'" "names the portrait and the folder"
check "no outputs" test ! -e "$T/e7"
run rhd-sample $S $U --low-res "$T/a" -o "$T/e8" $F
expect_rc 2 "--low-res with --base: usage error"
run rhd-sample --low-res "$T/a" -o "$T/e8" $F
expect_rc 2 "--low-res without --upsample: usage error"

run rhd-sample --help
expect_rc 0 "--help"
W="$T/ex"
mkdir -p "$W/features"
cp "$T/base.safetensors" "$W/base.ckpt.safetensors"; cp "$T/up.ckpt.safetensors" "$W/up.ckpt.safetensors"
cp "$T/p0.safetensors" "$W/features/x.safetensors"; cp "$T/p1.safetensors" "$W/features/y.safetensors"
printf 'features/x.safetensors\nfeatures/y.safetensors\n' > "$W/feats.txt"
nex=0
while IFS= read -r ex; do
    nex=$((nex + 1))
    (cd "$W" && PATH="$RHD_BIN:$PATH" bash -c "$ex" >/dev/null 2>"$W/err")
    _tap $? "--help example runs: $ex"
done < <(printf '%s\n' "$out" | awk '/^examples?:/ {on = 1; next} on && /^  / {sub(/^  /, ""); print}')
check "--help has examples ($nex)" test "$nex" -ge 4
done_testing
