#!/usr/bin/env bash
# tests/tools/t0560-fit-entries.sh: stage 1's per-entry evaluation and the presets (issue 15,
# items 3 and 4). On the bundled mini set at a tiny size:
#   1. the PSNR of an avatar's last entry (its JSON line) is the forgetting report's for it when
#      the decoder has not changed since (the plan's last entry): both render the held-out views on
#      a fresh grid warmed up as rhd-render does (before, the entry used its training grid);
#   2. --entry-eval last renders only after each avatar's last entry: the other lines say
#      "psnr": null, the last ones the same numbers as with --entry-eval all;
#   3. --preset: fast gives its sizes (a stage-2 triplane of 32, stage-1 triplanes 3x16x32x32),
#      options given override it wherever they stand, an unknown preset is a usage error (exit 2);
#      quality-plus: 32 channels and --plane-agg offset-product in stage 1, the decoder's in stage 2;
#   4. a refit round (rhd-schedule fit --refit-steps, entries with decoder_lr 0) leaves the decoder
#      bit for bit as the last training entry left it, and moves the triplanes: the refit entries'
#      PSNR is the report's.
# About 40 s of CPU time.
. "$RHD_ROOT/tests/tools/lib.sh"
PY=${RHD_PY:-python3}
MINI=$RHD_ROOT/tests/data/mini
R="--grid-size 16 --max-steps 32 --threads 2 --rays 128 --train-views 0-23 --eval-views 100,110"
S1="--triplane-res 16 --triplane-channels 8 $R"

run rhd-schedule fit -q --avatars avatar_100,avatar_101 --rounds 2 --steps 12 --refit-steps 0 -o "$T/plan.json"
expect_rc 0 "plan: 2 rounds of 2 avatars, 12 steps"
run rhd-fit -q --stage 1 --plan "$T/plan.json" --data "$MINI" $S1 -o "$T/all"
expect_rc 0 "stage 1, --entry-eval all (the default)"
printf '%s\n' "$out" > "$T/all.jsonl"
check "the last entry's PSNR (avatar_101, entry 3) is the report's with the final decoder (within 1e-4 dB)" "$PY" -c "
import json, sys
L = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ent = [l for l in L if 'entry' in l]; rep = [l for l in L if 'report' in l][0]['report']['psnr']
last = [l for l in ent if l['entry'] == 3][0]
print(last, rep)
assert last['avatar'] == 'avatar_101' and abs(last['psnr'] - rep['avatar_101']) <= 1e-4, (last, rep)" "$T/all.jsonl"
run rhd-fit -q --stage 1 --plan "$T/plan.json" --data "$MINI" $S1 --entry-eval last -o "$T/last"
expect_rc 0 "stage 1, --entry-eval last"
printf '%s\n' "$out" > "$T/last.jsonl"
check "--entry-eval last: null before an avatar's last entry, the same PSNR at it" "$PY" -c "
import json, sys
a = [json.loads(l) for l in open(sys.argv[1]) if l.strip() and 'entry' in l]
b = [json.loads(l) for l in open(sys.argv[2]) if l.strip() and 'entry' in l]
assert [x['psnr'] for x in b[:2]] == [None, None], b
assert all(abs(x['psnr'] - y['psnr']) <= 1e-9 for x, y in zip(a[2:], b[2:])), (a, b)" "$T/all.jsonl" "$T/last.jsonl"

# --- presets ---------------------------------------------------------------------------------------
run rhd-fit -q --stage 2 --preset fast --decoder "$T/all/decoder.safetensors" --data "$MINI" --avatar avatar_100 \
    --steps 8 --grid-size 16 --max-steps 32 --rays 128 --train-views 0-23 --eval-views 100 -o "$T/p.safetensors"
expect_rc 0 "stage 2 --preset fast with --steps/--grid-size after it"
check "--preset fast: the stage-2 triplane is 32x32 (the decoder was fitted at 16)" "$PY" -c "
import json, struct, sys
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
shapes = [v['shape'] for k, v in h.items() if k != '__metadata__']
assert all(s[-1] == 32 and s[-2] == 32 for s in shapes), shapes" "$T/p.safetensors"
check "--steps 8 overrides the preset's 300" test "$(printf '%s' "$out" | grep -o '"steps": [0-9]*')" = '"steps": 8'
run rhd-schedule fit -q --avatars avatar_100 --rounds 1 --steps 2 --refit-steps 0 -o "$T/p1.json"
run rhd-fit -q --stage 1 --plan "$T/p1.json" --data "$MINI" --grid-size 16 --max-steps 32 --rays 64 --train-views 0-23 \
    --eval-views 100 --preset fast -o "$T/pf"
expect_rc 0 "stage 1 --preset fast (given after the options it would set)"
check "--preset fast: stage-1 triplane [3,16,32,32]" "$PY" -c "
import json, struct, sys
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
shapes = [v['shape'] for k, v in h.items() if k != '__metadata__']
assert shapes == [[3, 16, 32, 32]], shapes" "$T/pf/triplanes/avatar_100.safetensors"
run rhd-fit -q --stage 2 --preset quality --decoder "$T/all/decoder.safetensors" --data "$MINI" --avatar avatar_100 \
    --steps 2 --train-views 0-23 --eval-views 100 -o "$T/pq.safetensors"
expect_rc 0 "stage 2 --preset quality (2 steps)"
check "--preset quality: the stage-2 triplane is 64x64 (the decoder was fitted at 16)" "$PY" -c "
import json, struct, sys
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
shapes = [v['shape'] for k, v in h.items() if k != '__metadata__']
assert all(s[-1] == 64 and s[-2] == 64 for s in shapes), shapes" "$T/pq.safetensors"
# quality-plus: 32 channels and the offset product in stage 1; stage 2 takes the decoder's
run rhd-fit -q --stage 1 --plan "$T/p1.json" --data "$MINI" --preset quality-plus --grid-size 16 --max-steps 32 \
    --rays 64 --train-views 0-23 --eval-views 100 -o "$T/pp"
expect_rc 0 "stage 1 --preset quality-plus (2 steps)"
check "--preset quality-plus: stage-1 triplane [3,32,64,64], decoder rhd.plane_agg offset-product" "$PY" -c "
import json, struct, sys
def head(f):
    b = open(f, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; return json.loads(b[8:8 + n])
shapes = [v['shape'] for k, v in head(sys.argv[1]).items() if k != '__metadata__']
assert shapes == [[3, 32, 64, 64]], shapes
assert head(sys.argv[2])['__metadata__']['rhd.plane_agg'] == 'offset-product'" \
    "$T/pp/triplanes/avatar_100.safetensors" "$T/pp/decoder.safetensors"
run rhd-fit -q --stage 1 --plan "$T/p1.json" --data "$MINI" --preset quality-plus --plane-agg mean --grid-size 16 \
    --max-steps 32 --rays 64 --train-views 0-23 --eval-views 100 -o "$T/pm"
check "--plane-agg mean overrides the preset's offset product" test "$(printf '%s' "$(head -c 4096 "$T/pm/decoder.safetensors")" | grep -ao '"rhd.plane_agg":"[a-z-]*"')" = '"rhd.plane_agg":"mean"'
run rhd-fit -q --stage 2 --preset quality-plus --decoder "$T/all/decoder.safetensors" --data "$MINI" --avatar avatar_100 \
    --steps 2 --train-views 0-23 --eval-views 100 -o "$T/pqp.safetensors"
expect_rc 0 "stage 2 --preset quality-plus with a mean decoder: the decoder's aggregation, no error"

# --- a refit round: the decoder frozen --------------------------------------------------------------
run rhd-schedule fit -q --avatars avatar_100,avatar_101 --rounds 2 --steps 6 --round-lr constant --refit-steps 6 -o "$T/refit.json"
expect_rc 0 "plan with --round-lr constant --refit-steps 6"
check "the plan: 3 rounds, 6 entries, round 2 frozen (decoder_lr 0), every triplane lr 0.02" "$PY" -c "
import json, sys
p = json.load(open(sys.argv[1])); E = p['entries']
assert p['rounds'] == 3 and len(E) == 6, p
assert [e['decoder_lr'] for e in E] == [0.002] * 4 + [0, 0], E
assert [e['round'] for e in E] == [0, 0, 1, 1, 2, 2] and all(e['triplane_lr'] == 0.02 for e in E), E" "$T/refit.json"
run rhd-fit -q --stage 1 --plan "$T/refit.json" --data "$MINI" $S1 --max-entries 4 -o "$T/rf"
expect_rc 0 "stage 1: the 4 training entries"
cp "$T/rf/decoder.safetensors" "$T/dec_trained.safetensors"
cp "$T/rf/triplanes/avatar_100.safetensors" "$T/tri_trained.safetensors"
run rhd-fit -q --stage 1 --plan "$T/refit.json" --data "$MINI" $S1 --resume -o "$T/rf"
expect_rc 0 "stage 1: resumed through the refit round"
printf '%s\n' "$out" > "$T/rf.jsonl"
check "the refit round left every decoder tensor bit for bit as the training entries did, and changed the triplane" "$PY" -c "
import json, struct, sys
def tensors(f):
    b = open(f, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
    return {k: b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]] for k, v in h.items() if k != '__metadata__'}
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
assert a.keys() == b.keys() and len(a) > 0 and all(a[k] == b[k] for k in a), [k for k in a if a[k] != b.get(k)]
assert tensors(sys.argv[3]) != tensors(sys.argv[4])" "$T/dec_trained.safetensors" "$T/rf/decoder.safetensors" \
    "$T/tri_trained.safetensors" "$T/rf/triplanes/avatar_100.safetensors"
check "the refit entries' PSNR is the report's (the decoder no longer changes)" "$PY" -c "
import json, sys
L = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ent = {l['entry']: l for l in L if 'entry' in l}; rep = [l for l in L if 'report' in l][0]['report']['psnr']
print(ent, rep)
assert abs(ent[4]['psnr'] - rep['avatar_100']) <= 1e-4 and abs(ent[5]['psnr'] - rep['avatar_101']) <= 1e-4" "$T/rf.jsonl"

run rhd-fit --stage 2 --preset best --decoder "$T/all/decoder.safetensors" --data "$MINI" --avatar avatar_100 -o "$T/q.safetensors"
expect_rc 2 "--preset best: usage error"
expect_err "preset" "the message names the option"
done_testing
