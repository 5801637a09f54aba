#!/usr/bin/env bash
# rhd-encode checks its inputs' values and its outputs before it builds the encoder: weights with
# NaN/Inf are refused naming the file and tensor; an output that is one of the inputs (portrait,
# weights, --list, --config) is a usage error naming both, and the input is kept; an output that
# cannot be written fails before the encoder exists; a directory as portrait says so.
. "$RHD_ROOT/tests/tools/lib.sh"
PY=${RHD_PY:-python3}
mini="$RHD_ROOT/tests/data/mini"
cp "$mini/avatar_100/img_proc_fg_000000.png" "$T/p.png"
sum=$(cksum < "$T/p.png")

run rhd-encode --weights random:1 -o "$T/p.png" "$T/p.png"
expect_rc 2 "-o p.png p.png is a usage error"
expect_err "-o .*p.png: the same file as the input .*p.png" "naming both"
check "the portrait is untouched" test "$(cksum < "$T/p.png")" = "$sum"
mkdir -p "$T/d"
run rhd-encode --weights random:1 -o "$T/d/../p.png" "$T/p.png"
expect_rc 2 "the same file spelt through d/.."
printf 'avatar_100\n' > "$T/avatar_100.safetensors"
run rhd-encode --weights random:1 --data "$mini" --list "$T/avatar_100.safetensors" --out-dir "$T"
expect_rc 2 "an output that is the --list file"
expect_err "--out-dir .*avatar_100.safetensors: the same file as the input" "says so"
check "the list is untouched" grep -qx avatar_100 "$T/avatar_100.safetensors"

# a weights folder whose safetensors holds a NaN (the check reads every tensor before loading)
"$PY" - "$T" <<'PYEOF'
import json, os, sys, numpy as np
from safetensors.numpy import save_file
d = sys.argv[1] + "/w"
os.makedirs(d)
cfg = {"_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [8, 16, 16, 16],
       "down_block_types": ["DownEncoderBlock2D"] * 4, "in_channels": 3, "out_channels": 3, "latent_channels": 4,
       "layers_per_block": 1, "norm_num_groups": 4, "sample_size": 128}
json.dump(cfg, open(d + "/config.json", "w"))
w = np.ones((8, 3, 3, 3), np.float32); w[1, 2, 0, 1] = np.inf; w[5, 0, 0, 0] = np.nan
save_file({"encoder.conv_in.weight": w, "encoder.conv_in.bias": np.zeros(8, np.float32)}, d + "/diffusion_pytorch_model.safetensors")
PYEOF
run rhd-encode --weights "$T/w" -o "$T/f.safetensors" "$T/p.png"
expect_rc 1 "weights with NaN and +Inf are refused"
expect_err "--weights .*w: .*diffusion_pytorch_model.safetensors: tensor 'encoder.conv_in.weight': 1 NaN, 1 \+Inf, 0 -Inf of 216 values \(first at flat index 46\)" \
    "naming the file, the tensor, the counts and the first index"
check "no features written" test ! -e "$T/f.safetensors"
run rhd-encode --weights "$T/w" -o "$T/w/diffusion_pytorch_model.safetensors" "$T/p.png"
expect_rc 2 "an output that is the weights file"

# unwritable outputs fail before the encoder is built (its RANDOM-weights warning never shows)
run rhd-encode --weights random:1 -o "$T/p.png/f.safetensors" "$T/p.png"
expect_rc 1 "an output under a regular file"
expect_err "-o .*p.png/f.safetensors: .*p.png is not a directory" "says why"
check "before the encoder was built" test -z "$(printf '%s' "$err" | grep RANDOM)"
run rhd-encode --weights random:1 --out-dir /proc/rhd-no "$T/p.png"
expect_rc 1 "an --out-dir where nothing can be created"
expect_err "--out-dir /proc/rhd-no/p.safetensors: cannot create a file in /proc" "says so"
check "before the encoder was built" test -z "$(printf '%s' "$err" | grep RANDOM)"
mkdir -p "$T/o/p.safetensors"
run rhd-encode --weights random:1 --out-dir "$T/o" "$T/p.png"
expect_rc 1 "an output path that is a directory"
expect_err "p.safetensors: is a directory, expected a file path" "says so"

# a directory as portrait
mkdir -p "$T/dir.png"
run rhd-encode --weights random:1 -o "$T/x.safetensors" "$T/dir.png"
expect_rc 1 "a directory as portrait"
expect_err "dir.png: is a directory, expected a file" "says so"
done_testing
