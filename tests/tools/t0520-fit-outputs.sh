#!/usr/bin/env bash
# rhd-fit and rhd-render check their outputs before any work: an output that is an input is a
# usage error naming both (and the input is left as it was); an unwritable output fails at once
# (a stage 2 of 10^9 steps exits in seconds). rhd-fit prints progress lines during an entry and a
# stage-2 fit (RHD_PROGRESS_INTERVAL), numbers entries alike on stdout and stderr, labels its
# contact sheet, and takes --pose-scale (rhd-render's name) with --scale as an alias.
. "$RHD_ROOT/tests/tools/lib.sh"
MINI=$RHD_ROOT/tests/data/mini
TINY="--triplane-res 8 --triplane-channels 4 --grid-size 8 --rays 16 --max-steps 2 --dist-points 8 --train-views 0-1 --eval-views 100 --threads 1 --warmup 1"
run rhd-schedule fit --data "$MINI" --rounds 1 --steps 2 --refit-steps 0 -o "$T/plan.json"
expect_rc 0 "plan"
export RHD_PROGRESS_INTERVAL=0.05
run rhd-fit --stage 1 --plan "$T/plan.json" --data "$MINI" $TINY -o "$T/run"
expect_rc 0 "tiny stage 1"
expect_err "entry 1 \(2/2\) round 0 avatar_101(, step [0-9]+/2)?: fitting for" "a progress line while an entry runs (RHD_PROGRESS_INTERVAL=0.05)"
ok_num=0
for k in 0 1; do
    printf '%s' "$out" | grep -q "\"entry\": $k," && printf '%s' "$err" | grep -q "entry $k ($((k + 1))/2) round 0 .*eval PSNR" && ok_num=$((ok_num + 1))
done
check "stdout's entry numbers are stderr's (entry k (k+1/N))" test "$ok_num" = 2
export RHD_PROGRESS_INTERVAL=1000
D=$T/run/decoder.safetensors
cp "$D" "$T/decoder.copy"
S2="--stage 2 --decoder $D --data $MINI --avatar avatar_100 $TINY"

# --- an output that is an input ---
run rhd-fit $S2 --steps 2 --force -o "$D"
expect_rc 2 "stage 2 -o the decoder itself"
expect_err "-o .*decoder.safetensors: the same file as --decoder .*decoder.safetensors" "names both"
check "the decoder is untouched" cmp "$D" "$T/decoder.copy"
run rhd-fit --report --decoder "$D" --triplanes "$T/run/triplanes" --data "$MINI" $TINY --contact-sheet "$D"
expect_rc 2 "--report --contact-sheet the decoder"
expect_err "--contact-sheet .*: the same file as --decoder" "names both"
run rhd-fit --report --decoder "$D" --triplanes "$T/run/triplanes" --data "$MINI" $TINY --contact-sheet "$T/run/triplanes/avatar_100.safetensors"
expect_rc 2 "--report --contact-sheet a triplane it reads"
run rhd-render --decoder "$D" --data "$MINI/avatar_100" --views 100 -o "$T/run/triplanes/avatar_100.safetensors" "$T/run/triplanes/avatar_100.safetensors"
expect_rc 2 "rhd-render -o the triplane"
expect_err "-o .*: the same file as the triplane" "names both"
run rhd-render --decoder "$D" --data "$MINI/avatar_100" --views 100 --no-images --contact-sheet "$D" "$T/run/triplanes/avatar_100.safetensors"
expect_rc 2 "rhd-render --contact-sheet the decoder"
check "the decoder is still untouched" cmp "$D" "$T/decoder.copy"

# --- unwritable outputs fail before the work ---
echo x >"$T/plain"
t0=$(date +%s)
run rhd-fit $S2 --steps 1000000000 -o "$T/plain/a.safetensors"
t1=$(date +%s)
expect_rc 1 "stage 2 into a folder that is a file"
expect_err "-o .*plain.*(is not a directory|cannot create)" "names the output"
check "it failed before fitting ($((t1 - t0)) s for 10^9 steps)" test $((t1 - t0)) -lt 30
run rhd-fit --report --decoder "$D" --triplanes "$T/run/triplanes" --data "$MINI" $TINY --contact-sheet "$T/plain/s.png"
expect_rc 1 "--report --contact-sheet unwritable"
check "no report printed before the failure" test -z "$out"
run rhd-fit --report --decoder "$D" --triplanes "$T/run/triplanes" --data "$MINI" $TINY --contact-sheet "$T"
expect_rc 1 "--report --contact-sheet a directory"
run rhd-render --decoder "$D" --data "$MINI/avatar_100" --views 100 --metrics --no-images --mesh "$T/plain/m.ply" "$T/run/triplanes/avatar_100.safetensors"
expect_rc 1 "rhd-render --mesh unwritable"
check "no metrics printed before the failure" test -z "$out"
run rhd-render --decoder "$D" --data "$MINI/avatar_100" --views 100 -o "$T/plain/frames" "$T/run/triplanes/avatar_100.safetensors"
expect_rc 1 "rhd-render -o unwritable"

# --- a progress line during stage 2 ---
RHD_PROGRESS_INTERVAL=0.05 run rhd-fit $S2 --steps 40 -o "$T/s2/p.safetensors"
expect_rc 0 "stage 2, 40 steps"
expect_err "stage 2 avatar_100, step [0-9]+/40: fitting for [^,]*, about [0-9.]+[a-z]+ left" "a progress line while stage 2 runs: steps done and the time left"

# --- labelled contact sheet ---
run rhd-fit --report --decoder "$D" --triplanes "$T/run/triplanes" --data "$MINI" $TINY --contact-sheet "$T/sheet.png"
expect_rc 0 "--report --contact-sheet"
check "the sheet has label lines (taller than 2 rows of 128 px images)" "${RHD_PY:-python3}" -c "
import struct, sys; b = open(sys.argv[1], 'rb').read(24); w, h = struct.unpack('>II', b[16:24]); assert h > 2 * 128 + 20, (w, h)" "$T/sheet.png"

# --- --pose-scale, --scale its alias ---
run rhd-fit $S2 --steps 2 --pose-scale 0.5 -o "$T/ps/a.safetensors"
expect_rc 0 "stage 2 --pose-scale 0.5"
run rhd-fit $S2 --steps 2 --scale 0.5 -o "$T/ps/b.safetensors"
expect_rc 0 "stage 2 --scale 0.5 (alias)"
run rhd-fit $S2 --steps 2 -o "$T/ps/c.safetensors"
check "--scale is --pose-scale" cmp "$T/ps/a.safetensors" "$T/ps/b.safetensors"
check "--pose-scale 0.5 changes the fit (default 0.6)" sh -c "! cmp -s '$T/ps/a.safetensors' '$T/ps/c.safetensors'"
done_testing
