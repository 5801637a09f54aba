#!/usr/bin/env bash
# rhd-fit and rhd-render on the CUDA backend against the CPU, end to end on the mini dataset: a
# tiny stage-1 fit on the CPU gives a decoder and a triplane; rendering them with --device cuda
# must give the CPU's metrics (PSNR within 0.05 dB, SSIM within 0.002) and a mesh of the same
# size; a stage-2 fit with --device cuda must reach the CPU run's held-out PSNR within 0.5 dB
# (CUDA sums in another order and accumulates with atomics, so the trajectories differ by
# rounding only). Skipped where the build has no CUDA backend or the machine no device.
. "$RHD_ROOT/tests/tools/lib.sh"
MINI=$RHD_ROOT/tests/data/mini
SMALL="--triplane-res 16 --triplane-channels 8 --grid-size 16 --rays 128 --max-steps 32 --dist-points 64 --train-views 0-23 --eval-views 100 --threads 2"

needs_cuda

run rhd-schedule fit --avatars avatar_100 --rounds 1 --steps 60 -o "$T/plan.json"
expect_rc 0 "plan"
run rhd-fit --stage 1 --plan "$T/plan.json" --data "$MINI" $SMALL -o "$T/fit"
expect_rc 0 "stage 1 on the CPU"
DEC=$T/fit/decoder.safetensors TRI=$T/fit/triplanes/avatar_100.safetensors
R="--decoder $DEC --data $MINI/avatar_100 --views 100,105,110,115 --downscale 8 --grid-size 16 --warmup 4 --metrics"
run rhd-render --device cpu $R -o "$T/cpu" "$TRI"
expect_rc 0 "render on the CPU"
cpu=$out
run rhd-render --device cuda $R -o "$T/gpu" "$TRI"
expect_rc 0 "render with --device cuda"
gpu=$out
mean() { printf '%s' "$1" | sed -n "s/.*\"mean\": *{[^}]*\"$2\": *\([0-9.eE+-]*\).*/\1/p"; }
pc=$(mean "$cpu" psnr) pg=$(mean "$gpu" psnr) sc=$(mean "$cpu" ssim) sg=$(mean "$gpu" ssim)
check "CUDA render PSNR $pg dB = CPU $pc dB within 0.05" awk -v a="$pc" -v b="$pg" 'BEGIN { d = a - b; exit !(a != "" && d < 0.05 && d > -0.05) }'
check "CUDA render SSIM $sg = CPU $sc within 0.002" awk -v a="$sc" -v b="$sg" 'BEGIN { d = a - b; exit !(a != "" && d < 0.002 && d > -0.002) }'
check "CUDA frames written" test -s "$T/gpu/rgb_0100.png"

run rhd-render --device cpu --decoder "$DEC" --no-images --mesh "$T/cpu.ply" --mesh-res 48 --mesh-threshold 2 "$TRI"
expect_rc 0 "mesh on the CPU"
vc=$(printf '%s' "$err" | sed -n 's/.*: \([0-9]*\) vertices.*/\1/p')
run rhd-render --device cuda --decoder "$DEC" --no-images --mesh "$T/gpu.ply" --mesh-res 48 --mesh-threshold 2 "$TRI"
expect_rc 0 "mesh with --device cuda"
vg=$(printf '%s' "$err" | sed -n 's/.*: \([0-9]*\) vertices.*/\1/p')
check "CUDA mesh $vg vertices = CPU $vc within 1%" awk -v a="$vc" -v b="$vg" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d <= 0.01 * a) }'

S2="--stage 2 --decoder $DEC --data $MINI --avatar avatar_101 --steps 100 --lr0 0.05 $SMALL"
run rhd-fit --device cpu $S2 -o "$T/s2cpu.safetensors"
expect_rc 0 "stage 2 on the CPU"
p1=$(printf '%s' "$out" | sed -n 's/.*"psnr": \([0-9.]*\).*/\1/p')
run rhd-fit --device cuda $S2 -o "$T/s2gpu.safetensors"
expect_rc 0 "stage 2 with --device cuda"
p2=$(printf '%s' "$out" | sed -n 's/.*"psnr": \([0-9.]*\).*/\1/p')
check "CUDA stage-2 held-out PSNR $p2 dB = CPU $p1 dB within 0.5" awk -v a="$p1" -v b="$p2" 'BEGIN { d = a - b; exit !(a != "" && d < 0.5 && d > -0.5) }'
done_testing
