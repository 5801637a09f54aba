#!/usr/bin/env bash
# rhd-schedule: outputs checked before the work (an output that is an input is a usage error
# naming both; an unwritable one fails first), and the incomplete-data policy of fit --data (an
# avatar directory without metadata_000000.json is an error naming it; --skip-incomplete leaves it
# out and lists it on stderr).
. "$RHD_ROOT/tests/tools/lib.sh"
mini="$RHD_ROOT/tests/data/mini"

printf 'avatar_100\navatar_101\n' > "$T/l.txt"
run rhd-schedule fit --list "$T/l.txt" -o "$T/l.txt"
expect_rc 2 "fit -o the --list file is a usage error"
expect_err "-o .*l.txt: the same file as the input .*l.txt" "naming both"
check "the list is untouched" test "$(cat "$T/l.txt")" = "$(printf 'avatar_100\navatar_101')"
mkdir -p "$T/d"
run rhd-schedule fit --list "$T/l.txt" -o "$T/d/../l.txt"
expect_rc 2 "the same file spelt another way"
printf '{"rounds": 2}' > "$T/c.json"
run rhd-schedule fit --avatars a,b --config "$T/c.json" -o "$T/c.json"
expect_rc 2 "fit -o the --config file"
check "the config is untouched" grep -q rounds "$T/c.json"
run rhd-schedule noise --steps 10 -o "$T/n.png" --png "$T/./n.png"
expect_rc 2 "noise -o and --png naming the same file"
expect_err "name the same file" "says so"
printf '{"steps": 10}' > "$T/c2.json"
run rhd-schedule noise --config "$T/c2.json" --png "$T/c2.json"
expect_rc 2 "noise --png the --config file"
run rhd-schedule fit --avatars a,b -o "$T/l.txt/plan.json"
expect_rc 1 "a plan under a regular file"
expect_err "-o .*l.txt/plan.json: .*l.txt is not a directory" "says why"
run rhd-schedule noise --steps 10 -o /proc/rhd-no/t.tsv
expect_rc 1 "a table where no file can be created"
expect_err "cannot create a file in /proc" "says why"
check "nothing on stdout" test -z "$out"

# fit --data: an avatar without view 0's metadata
mkdir -p "$T/data"
cp -r "$mini/avatar_100" "$mini/avatar_101" "$T/data/"
rm "$T/data/avatar_101/metadata_000000.json"
mkdir -p "$T/data/notes" && touch "$T/data/notes/readme.txt"
run rhd-schedule fit --data "$T/data" --rounds 1
expect_rc 1 "an avatar without metadata_000000.json is an error by default"
expect_err "data: 1 avatar directory with view files but no metadata_000000.json .*: avatar_101; expected it in every avatar \(--skip-incomplete" \
    "naming the avatar and the missing file"
run rhd-schedule fit --data "$T/data" --rounds 1 --skip-incomplete
expect_rc 0 "--skip-incomplete goes on"
expect_err "warning: .*data: leaving out 1 avatar with view files but no metadata_000000.json \(--skip-incomplete\): avatar_101" \
    "and lists what it leaves out on stderr"
check "the plan holds the complete avatar only" test "$(printf '%s' "$out" | tr -d ' \n' | grep -o '"avatars":\[[^]]*\]')" = '"avatars":["avatar_100"]'
run rhd-schedule fit --avatars a,b --rounds 100000 --steps 1000000000
expect_rc 2 "a plan whose total steps exceed the limit: a usage error"
expect_err "100000 rounds x 2 visits x 1000000000 steps and the refit round exceed [0-9]+ steps in total" "names the product"
run rhd-schedule fit --avatars a,b --skip-incomplete
expect_rc 2 "--skip-incomplete without --data"
done_testing
