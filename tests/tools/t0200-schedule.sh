#!/usr/bin/env bash
# rhd-schedule: the fit plan (defaults of the original, avatar sources, orders, show, validation
# of edited plans), the noise tables (reference numbers, respacing, DDIM steps, JSON), the PNG
# plot (a valid PNG, checked by an independent Python decoder), and the exit codes and messages of
# bad options.
. "$RHD_ROOT/tests/tools/lib.sh"
PY=${RHD_PY:-python3}

# --- commands ---------------------------------------------------------------------------------
run rhd-schedule --help
expect_rc 0 "--help"
expect_out "fit +write the task-replay plan" "--help lists the commands"
run rhd-schedule
expect_rc 2 "no command"
expect_err "expected a command: fit, show or noise" "no-command message"
run rhd-schedule plan
expect_rc 2 "unknown command"
expect_err "unknown command 'plan', expected fit, show or noise" "unknown-command message"
run rhd-schedule fit --help
expect_rc 0 "fit --help"
expect_out "--rounds N .*\(default: 30\)" "fit --help shows the original's defaults"
expect_out "--round-lr RULE .*default: constant" "fit --help: the triplane lr of every round is lr0 by default"

# --- fit: the defaults: the original's rounds at lr0, then the refit round --------------------------
run rhd-schedule fit --avatars avatar_100,avatar_101 -o "$T/default.json"
expect_rc 0 "fit with the defaults"
expect_err "plan: 30 rounds x 2 avatars \(round-robin\) \+ a refit round = 62 entries, 372000 steps; triplane lr 0.02 .. 0.02; decoder lr 0.002 -> 0.0002 over its 360000 steps \(x0.1 after 300000\); refit round: 6000 steps per avatar, decoder frozen, triplane lr 0.02; iwc 0.1" "default summary: the refit round"
check "the default plan: 30 rounds at lr0, then each avatar alone with decoder_lr 0" "$PY" -c "
import json, sys
p = json.load(open(sys.argv[1])); e = p['entries']
assert p['rounds'] == 31 and len(e) == 62, p['rounds']
assert all(x['triplane_lr'] == 0.02 and x['decoder_lr'] == 0.002 for x in e[:60])
assert [(x['round'], x['avatar'], x['steps'], x['decoder_lr']) for x in e[60:]] == [(30, 'avatar_100', 6000, 0), (30, 'avatar_101', 6000, 0)]
" "$T/default.json"
run rhd-schedule show "$T/default.json"
expect_out "    61    30  avatar_101 +6000  2.000e-02 .. 2.001e-03 +frozen +-" "show: a refit entry says the decoder is frozen"
run rhd-schedule fit --avatars a,b --refit-steps -2
expect_rc 2 "--refit-steps -2"
expect_err "refit-steps" "the message names the option"
run rhd-schedule fit --avatars a,b --round-lr decay
expect_rc 2 "--round-lr decay"
expect_err "--round-lr takes one of original, constant, got 'decay'" "--round-lr message"

# --- fit: --round-lr original --refit-steps 0 reproduce the original -------------------------------
run rhd-schedule fit --avatars avatar_100,avatar_101 --round-lr original --refit-steps 0 -o "$T/plan.json"
expect_rc 0 "fit, the original's plan"
expect_err "plan: 30 rounds x 2 avatars \(round-robin\) = 60 entries, 360000 steps; triplane lr 0.02 .. 6.873e-05; decoder lr 0.002 -> 0.0002 over its 360000 steps \(x0.1 after 300000\); iwc 0.1 -> .*plan.json" "one-line summary on stderr"
# the decoder lr range the plan uses, not the decay's end (issue 15): 1200 steps of a 15000-step decay
want=$("$PY" -c "print('%.4g' % (0.002 * 0.1 ** (1199 / 15000)))")
run rhd-schedule fit --avatars a,b,c,d --rounds 3 --steps 100 --decoder-decay-steps 15000 --refit-steps 0 -o "$T/short.json"
expect_err "decoder lr 0.002 -> $want over its 1200 steps \(x0.1 after 15000\)" "summary: the decoder lr of the plan's last step ($want = 0.002 x 0.1^(1199/15000))"
run rhd-schedule fit --avatars a,b,c,d --rounds 3 --steps 100 --decoder-decay-steps 15000 --refit-steps 0 --print -o "$T/short2.json"
expect_out "decoder lr decays x0.1 over the first 15000 steps \(this plan: 0.002 .. $want\)" "--print header: the plan's decoder lr range"
check "no temp file is left behind" test ! -e "$T/plan.json.tmp"
check "the plan holds the original's schedule (spec §9.1)" "$PY" -c "
import json, sys
p = json.load(open(sys.argv[1]))
e = p['entries']
assert p['rhd.kind'] == 'plan' and p['rhd.version'] == 1 and p['order'] == 'round-robin'
assert p['rounds'] == 30 and p['iwc_weight'] == 0.1 and p['decoder_decay_steps'] == 300000
assert len(e) == 60 and [x['avatar'] for x in e[:4]] == ['avatar_100', 'avatar_101'] * 2
for x in e:
    assert x['steps'] == 6000 and x['decoder_lr'] == 0.002
    assert x['triplane_lr'] == 0.02 / (10 * x['round'] + 1)
assert ('%.4g %.3g %.3g' % (e[2]['triplane_lr'], e[4]['triplane_lr'], e[58]['triplane_lr'])) == '0.001818 0.000952 6.87e-05'
" "$T/plan.json"

run rhd-schedule show "$T/plan.json"
expect_rc 0 "show a plan"
expect_out "# plan: 30 rounds, 2 avatars, order round-robin, 60 entries, 360000 steps" "show: summary line"
expect_out "    59    29  avatar_101 +6000  6.873e-05 .. 6.875e-06 +2.000e-04 .. 2.000e-04 +354000..359999" "show: the last entry"
run rhd-schedule fit --avatars a,b --rounds 2 --steps 10 --print
expect_rc 0 "--print without -o"
expect_out "     3     1  b +10  " "--print shows a table, not JSON"

# --- fit: avatar sources ----------------------------------------------------------------------
printf '# stage 1\n\ndata/avatar_100\n  batch2/avatar_101/   # second\r\n' > "$T/list.txt"
run rhd-schedule fit --list "$T/list.txt" --rounds 1 -o -
expect_rc 0 "--list with comments, blank lines, CRLF and paths"
check "names are the last path components; paths are kept" "$PY" -c "
import json, sys
p = json.loads(sys.argv[1])
assert p['avatars'] == ['avatar_100', 'avatar_101'], p['avatars']
assert p['paths'] == {'avatar_100': 'data/avatar_100', 'avatar_101': 'batch2/avatar_101/'}, p['paths']
" "$out"
run rhd-schedule fit --data "$RHD_ROOT/tests/data/mini" --rounds 1 -o -
expect_rc 0 "--data on the bundled mini dataset"
expect_out '"avatars": \[
    "avatar_100",
    "avatar_101"
  \]' "--data finds the avatar directories, sorted"
if [ -d "$RHD_SHARED/data/blender-avatars-dev" ]; then
    run rhd-schedule fit --data "$RHD_SHARED/data/blender-avatars-dev" -q -o "$T/dev.json"
    expect_rc 0 "--data on the dev set"
    check "dev set: one entry per avatar per round (and the refit round)" "$PY" -c "
import json, os, sys
p = json.load(open(sys.argv[1])); root = sys.argv[2]
want = sorted(d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, 'metadata_000000.json')))
assert p['avatars'] == want and len(p['entries']) == 31 * len(want), (p['avatars'], want)  # 30 rounds + the refit round
" "$T/dev.json" "$RHD_SHARED/data/blender-avatars-dev"
    check "-q silences the summary" test -z "$err"
else
    echo "ok $((n + 1)) # SKIP no dev set at \$RHD_SHARED/data/blender-avatars-dev"; n=$((n + 1))
fi

# --- fit: orders ------------------------------------------------------------------------------
run rhd-schedule fit --avatars a,b,c,d,e,f,g,h --order shuffled --seed 5 -o "$T/s5a.json"
run rhd-schedule fit --avatars a,b,c,d,e,f,g,h --order shuffled --seed 5 -o "$T/s5b.json"
run rhd-schedule fit --avatars a,b,c,d,e,f,g,h --order shuffled --seed 6 -o "$T/s6.json"
check "shuffled: the same seed gives the same file" cmp -s "$T/s5a.json" "$T/s5b.json"
check "shuffled: another seed another plan; each round a permutation, rounds differ" "$PY" -c "
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
ra = [[x['avatar'] for x in a['entries'] if x['round'] == r] for r in range(30)]
rb = [[x['avatar'] for x in b['entries'] if x['round'] == r] for r in range(30)]
assert all(sorted(r) == list('abcdefgh') for r in ra)
assert ra != rb and len(set(map(tuple, ra))) > 25
" "$T/s5a.json" "$T/s6.json"
run rhd-schedule fit --avatars a,b,c,d,e --order interleaved --group 2 --rounds 1 -o -
expect_rc 0 "interleaved"
expect_out '"avatars": \["c", "d"\]' "interleaved entries list their group"

# --- fit: config file, flags override it ----------------------------------------------------------
echo '{"rounds": 2, "steps": 10, "order": "shuffled"}' > "$T/fit.json"
run rhd-schedule fit --config "$T/fit.json" --rounds 3 --avatars a,b -o -
expect_rc 0 "--config with a flag overriding it"
expect_out '"rounds": 4,' "the flag wins over the config (3 rounds + the refit round)"
expect_out '"order": "shuffled"' "the config applies"

# --- fit: bad options -------------------------------------------------------------------------
run rhd-schedule fit --avatars a --rounds 0
expect_rc 2 "--rounds 0"
expect_err "error: --rounds takes an integer in \[1, 100000\] \(e.g. --rounds 1\), got '0'" "--rounds 0 message"
run rhd-schedule fit --avatars a --steps -5
expect_rc 2 "--steps -5"
expect_err "--steps takes an integer in \[1, 1000000000\]" "--steps -5 message"
run rhd-schedule fit --avatars a --steps 1e12
expect_rc 2 "--steps 1e12 (not an integer)"
run rhd-schedule fit --avatars a --steps 99999999999
expect_rc 2 "--steps 99999999999 (absurd)"
run rhd-schedule fit --avatars a --lr0 0
expect_rc 2 "--lr0 0"
expect_err "--lr0 0: expected a number in \(0, 10\] \(e.g. --lr0 2e-2\)" "--lr0 0 message"
run rhd-schedule fit --avatars a --lr1 1e9
expect_rc 2 "--lr1 1e9"
run rhd-schedule fit --avatars a --iwc-weight nan
expect_rc 2 "--iwc-weight nan"
run rhd-schedule fit --avatars a --order random
expect_rc 2 "--order random"
expect_err "--order takes one of round-robin, shuffled, interleaved, got 'random'" "--order message"
run rhd-schedule fit --list "$T/missing.txt"
expect_rc 1 "--list of a missing file"
expect_err "error: --list .*missing.txt: cannot open: No such file or directory" "missing list message"
printf 'a\nb\n# c\nx/a\n' > "$T/dup.txt"
run rhd-schedule fit --list "$T/dup.txt"
expect_rc 1 "--list with a repeated name"
expect_err "dup.txt:4: avatar 'a' is already on line 1, expected unique names" "repeated-name message"
run rhd-schedule fit --data "$T"
expect_rc 1 "--data without avatar directories"
expect_err "no avatar directories \(subdirectories holding metadata_000000.json\)" "--data message"
run rhd-schedule fit --rounds 3
expect_rc 2 "no avatars"
expect_err "no avatars given, expected exactly one of --list FILE, --data DIR or --avatars A,B,C" "no-avatars message"
run rhd-schedule fit --avatars a --list "$T/list.txt"
expect_rc 2 "two avatar sources"
run rhd-schedule fit --avatars a,,b
expect_rc 2 "--avatars with an empty item"
expect_err "--avatars 'a,,b': item 1: empty avatar name" "--avatars message"
run rhd-schedule fit --avatars a --print -o -
expect_rc 2 "--print with -o -"
run rhd-schedule fit --avatars a -o "$T/no/such/dir/plan.json"
expect_rc 1 "-o into a missing directory"
expect_err "plan.json.tmp: cannot create: No such file or directory" "-o message"

# --- show: edited plans are validated -------------------------------------------------------------
"$PY" - "$T/plan.json" "$T" <<'PYEOF'
import json, sys
p = json.load(open(sys.argv[1])); d = sys.argv[2]
def save(name, q):
    json.dump(q, open(d + "/" + name, "w"), indent=1)
q = json.loads(json.dumps(p)); q["entries"][3]["steps"] = 0; save("steps0.json", q)
q = json.loads(json.dumps(p)); q["entries"][7]["avatar"] = "avatar_999"; save("unknown.json", q)
q = json.loads(json.dumps(p)); q["entries"][5]["round"] = 0; save("rounds.json", q)
q = json.loads(json.dumps(p)); q["entries"][2]["decoder_lr"] = -1e-3; save("lr.json", q)
open(d + "/broken.json", "w").write(json.dumps(p)[:500])
PYEOF
run rhd-schedule show "$T/steps0.json"
expect_rc 1 "show: steps 0"
expect_err "steps0.json: entries\[3\]: steps is 0, expected a positive integer" "steps-0 message"
run rhd-schedule show "$T/unknown.json"
expect_rc 1 "show: unknown avatar"
expect_err "unknown.json: entries\[7\]: avatar 'avatar_999' is not in \"avatars\"" "unknown-avatar message"
run rhd-schedule show "$T/rounds.json"
expect_rc 1 "show: decreasing round"
expect_err "rounds.json: entries\[5\]: round 0 after round 2, expected rounds in nondecreasing order" "round message"
run rhd-schedule show "$T/lr.json"
expect_rc 1 "show: negative lr"
expect_err "lr.json: entries\[2\]: decoder_lr is -0.001, expected a non-negative number" "lr message"
run rhd-schedule show "$T/broken.json"
expect_rc 1 "show: truncated JSON"
expect_err "broken.json:1:[0-9]+: invalid JSON" "truncated-JSON message"
run rhd-schedule show
expect_rc 2 "show without a file"

# --- noise: tables ----------------------------------------------------------------------------
run rhd-schedule noise --schedule cosine_light --steps 1000
expect_rc 0 "noise table of the base model's schedule"
printf '%s\n' "$out" > "$T/cl.tsv"
check "TSV: a header and 1000 rows" test "$(wc -l < "$T/cl.tsv")" = 1001
expect_out "^schedule	step	t	beta	alpha_bar	sqrt_alpha_bar	sqrt_one_minus_alpha_bar	posterior_variance	posterior_log_variance_clipped	snr" "TSV header"
check "cosine_light: beta_0, abar_0, abar_500, abar_999 as spec §3.2" "$PY" -c "
import sys
rows = [l.split('\t') for l in open(sys.argv[1]).read().splitlines()[1:]]
c = lambda i, k: float(rows[i][k])
for got, want in [(c(0, 3), 2.452065e-3), (c(0, 4), 0.9975479), (c(500, 4), 5.515200e-2), (c(999, 4), 5.321334e-21), (c(999, 3), 0.999)]:
    assert abs(got - want) <= 1e-6 * want, (got, want)
" "$T/cl.tsv"
run rhd-schedule noise --schedule sigmoid,cosine_light --steps 100 --json
expect_rc 0 "JSON for two schedules"
check "JSON columns: equal-length arrays, sigmoid reference numbers" "$PY" -c "
import json, sys
j = json.loads(sys.argv[1]); c = j['columns']
assert j['rhd.kind'] == 'schedule' and j['table'] == 'noise' and j['schedules'] == ['sigmoid', 'cosine_light']
assert all(len(v) == 200 for v in c.values())
ab = c['alpha_bar'][:100]
for t, want in [(0, 0.8511150), (9, 0.09485175), (99, 6.572520e-17)]:
    assert abs(ab[t] - want) <= 1e-6 * want, (t, ab[t])
" "$out"
run rhd-schedule noise --schedule linear --steps 20 --json
expect_rc 0 "linear T=20 (its last beta is 1)"
expect_out '"sqrt_recip_alphas_cumprod"|"snr": \[.*, 0\]' "abar reaches 0: written as numbers or null, still valid JSON"
check "JSON with an infinite entry parses" "$PY" -c "import json,sys; json.loads(sys.argv[1])" "$out"
run rhd-schedule noise --schedule cosine_light --steps 1000 --respacing ddim10
expect_rc 0 "respacing ddim10"
expect_out "cosine_light	9	900	" "respaced steps map to t = 0, 100, ..., 900"
run rhd-schedule noise --schedule cosine_light --steps 1000 --ddim 10 --eta 1
expect_rc 0 "DDIM table"
expect_out "cosine_light	9	999	999	999	5.32133432164" "DDIM steps end at t = 999"
run rhd-schedule noise --schedule sigmoid --steps 100 --ddim 10
expect_out "sigmoid	0	9	9	90	" "upsampler: t = 9 is fed to the network as 90"
run rhd-schedule noise --steps 1000 --ddim 7
check "DDIM S=7 gives 8 steps (spec §3.10)" test "$(printf '%s\n' "$out" | wc -l)" = 9
run rhd-schedule noise --steps 50 -o "$T/sched.tsv"
check "-o writes the table to a file" test "$(wc -l < "$T/sched.tsv")" = 51

# --- noise: bad options -----------------------------------------------------------------------
run rhd-schedule noise --schedule cosine_heavy
expect_rc 2 "unknown schedule"
expect_err "--schedule: unknown noise schedule 'cosine_heavy', expected one of linear, squaredcos_cap_v2, cosine, cosine_light, sigmoid" "unknown-schedule message"
run rhd-schedule noise --schedule cosine,cosine
expect_rc 2 "a schedule twice"
run rhd-schedule noise --steps 1
expect_rc 2 "--steps 1"
expect_err "--steps takes an integer in \[2, 1000000\]" "--steps message"
run rhd-schedule noise --steps 100000000
expect_rc 2 "--steps 100000000 (absurd)"
run rhd-schedule noise --schedule linear --steps 10
expect_rc 2 "linear with 10 steps"
expect_err "beta_5 = 1.11556, expected a value in \(0, 1\] \(the linear schedule needs at least 20 steps\)" "linear-T message"
run rhd-schedule noise --steps 100 --respacing ddim11
expect_rc 2 "an impossible respacing"
expect_err "--respacing: respacing 'ddim11': no integer stride gives exactly 11 of 100 steps" "respacing message"
run rhd-schedule noise --steps 100 --respacing 10,x
expect_rc 2 "a malformed respacing"
run rhd-schedule noise --steps 100 --ddim 101
expect_rc 2 "--ddim above T"
expect_err "DDIM: 101 sampling steps, expected 1..100" "--ddim message"
run rhd-schedule noise --eta 1
expect_rc 2 "--eta without --ddim"

# --- noise: the PNG plot ------------------------------------------------------------------------
run rhd-schedule noise --schedule cosine_light,cosine,linear,squaredcos_cap_v2,sigmoid --steps 1000 --png "$T/abar.png" --width 480 --height 300
expect_rc 0 "plot five schedules"
check "nothing on stdout when only --png is asked for" test -z "$out"
check "the plot is a valid PNG: 480x300 RGB, chunks with good CRCs, a decodable image with five curve colours" "$PY" - "$T/abar.png" <<'PYEOF'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "signature"
pos, chunks = 8, []
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    crc, = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
    assert zlib.crc32(kind + body) & 0xffffffff == crc, kind
    chunks.append((kind, body)); pos += 12 + n
assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND" and pos == len(data)
w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
assert (w, h, depth, ctype, interlace) == (480, 300, 8, 2, 0), (w, h, depth, ctype)
raw = zlib.decompress(b"".join(b for k, b in chunks if k == b"IDAT"))
stride = 3 * w
assert len(raw) == h * (stride + 1)
rows, prev = [], bytearray(stride)
for y in range(h):  # undo the PNG filters
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - 3] if i >= 3 else 0; b = prev[i]; c = prev[i - 3] if i >= 3 else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        else: assert f == 0, f
    rows.append(line); prev = line
colours = set()
for line in rows:
    for x in range(0, stride, 3):
        r, g, b = line[x:x + 3]
        if max(r, g, b) - min(r, g, b) > 60: colours.add((r // 32, g // 32, b // 32))
assert rows[0][:3] == b"\xff\xff\xff", "white background"
assert len(colours) >= 5, colours
PYEOF
run rhd-schedule noise --schedule cosine_light --png "$T/lv.png" --plot posterior_log_variance_clipped -o "$T/lv.tsv"
expect_rc 0 "plot a negative column (linear axis) and write the table too"
check "-o with --png also writes the table" test -s "$T/lv.tsv"
run rhd-schedule noise --png "$T/no/such/dir/x.png"
expect_rc 1 "--png into a missing directory"
expect_err "--png .*x.png: .*x.png.tmp: cannot create" "--png message"
run rhd-schedule noise --png "$T/x.png" --width 100
expect_rc 2 "--width 100"
run rhd-schedule noise --png "$T/x.png" --ddim 10
expect_rc 2 "--png with --ddim"

done_testing
