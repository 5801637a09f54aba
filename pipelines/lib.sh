# shellcheck shell=bash disable=SC2034
# pipelines/lib.sh: what the experiment scripts (forgetting.sh, quality.sh) share. Source it.
#
#   experiment_args NAME "$@"        the options: --update-doc FILE (sets DOC), --table-only (sets
#                                    TABLE_ONLY=1), -h/--help (prints the script's leading comment);
#                                    anything else is a usage error (exit 2) naming NAME
#   dev_avatars NAME MIN WHAT        ALL=(the avatars of $DATA: subfolders with metadata_000000.json,
#                                    sorted); exit 1 naming NAME when DATA is missing or holds fewer
#                                    than MIN (WHAT says why, e.g. "NAV+HELD")
experiment_args() {
    local name=$1 script=$0
    shift
    DOC='' TABLE_ONLY=0
    while [ $# -gt 0 ]; do
        case $1 in
            --update-doc) DOC=${2:?--update-doc needs a file}; shift 2 ;;
            --table-only) TABLE_ONLY=1; shift ;;
            -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$script"; exit 0 ;;
            *) echo "$name: error: unexpected argument '$1', expected --update-doc FILE or --table-only" >&2; exit 2 ;;
        esac
    done
}

dev_avatars() {
    local name=$1 min=$2 what=$3
    [ -d "$DATA" ] || { echo "$name: error: DATA=$DATA: no such directory, expected the dev set" >&2; exit 1; }
    mapfile -t ALL < <(for d in "$DATA"/*/; do [ -f "$d/metadata_000000.json" ] && basename "$d"; done | sort)
    if [ "${#ALL[@]}" -lt "$min" ]; then
        echo "$name: error: $DATA holds ${#ALL[@]} avatars, expected at least $what = $min" >&2; exit 1
    fi
}
