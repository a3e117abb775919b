#!/usr/bin/env bash
# Prints each test program's result lines and one closing total
# ("N passed, N failed, N skipped") from an automake build directory.
set -uo pipefail
dir=${1:-.}
pass=0; fail=0; skip=0
while IFS= read -r log; do
    trs=${log%.log}.trs
    res=$(sed -n 's/^:test-result: //p' "$trs" 2>/dev/null | head -1)
    name=${log#"$dir"/}
    name=${name%.log}
    tested=$(grep -ao 'Tested: [0-9]*' "$log" | tail -1 | awk '{print $2}')
    passing=$(grep -ao 'Passing: [0-9]*' "$log" | tail -1 | awk '{print $2}')
    failing=$(grep -ao 'Failing: [0-9]*' "$log" | tail -1 | awk '{print $2}')
    crashing=$(grep -ao 'Crashing: [0-9]*' "$log" | tail -1 | awk '{print $2}')
    if [ -n "$tested" ]; then
        echo "$name: $res (Criterion: tested $tested, passing $passing, failing $failing, crashing $crashing)"
        pass=$((pass + passing)); fail=$((fail + failing))  # Failing counts crashes too
        [ "$res" = SKIP ] && skip=$((skip + 1))
    else
        echo "$name: $res"
        case "$res" in PASS) pass=$((pass + 1));; SKIP) skip=$((skip + 1));; *) fail=$((fail + 1));; esac
    fi
    if [ "$res" != PASS ] && [ "$res" != SKIP ]; then
        echo "---- $log (last 60 lines) ----"; tail -60 "$log"; echo "----"
    fi
    grep -a '^SKIP:\|skipp' "$log" | head -3 | sed 's/^/    /'
done < <(find "$dir/tests" -name '*.log' 2>/dev/null | sort)
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
