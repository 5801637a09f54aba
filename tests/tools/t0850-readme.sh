#!/usr/bin/env bash
# The README's claims checked (tests/tools/readme_check.py): every option it mentions exists in
# that tool's --help (and the tools a sentence lists for an option take it), every command of its
# sh blocks runs on the bundled data (or is marked [long], [gpu], [network], [cluster]), and every
# timing it states says how it was measured (pipelines/measure-readme.sh measures them).
. "$RHD_ROOT/tests/tools/lib.sh"
export T
PY=${RHD_PY:-python3}
if ! command -v mpirun >/dev/null 2>&1; then
    echo "# mpirun not found: the README's mpirun commands are expected to fail (tests/deps.sh test installs openmpi-bin)"
fi
"$PY" "$RHD_ROOT/tests/tools/readme_check.py" "$RHD_ROOT/README.md" "$RHD_BIN" "$RHD_ROOT"
rc=$?
rm -rf "$T"
exit $rc
