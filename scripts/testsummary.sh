#!/usr/bin/env bash
# Passes `go test -v` output through, keeping package results and the name
# of every test, and ends with one line: "N passed, N failed, N skipped",
# plus how many packages failed as a whole (a panic or a timeout kills a
# package before its tests can report). Exits non-zero if any test or
# package failed.
set -uo pipefail
pass=0 fail=0 skip=0 pkgfail=0
while IFS= read -r line; do
	case "$line" in
	"=== RUN"* | "=== PAUSE"* | "=== CONT"* | "=== NAME"*) continue ;;
	esac
	printf '%s\n' "$line"
	case "$line" in
	*"--- PASS: "*) [[ "$line" =~ ^--- ]] && pass=$((pass + 1)) ;;
	*"--- FAIL: "*) [[ "$line" =~ ^--- ]] && fail=$((fail + 1)) ;;
	*"--- SKIP: "*) [[ "$line" =~ ^--- ]] && skip=$((skip + 1)) ;;
	"FAIL"$'\t'*) pkgfail=$((pkgfail + 1)) ;;
	esac
done
summary="$pass passed, $fail failed, $skip skipped"
[ "$pkgfail" = 0 ] || summary="$summary; $pkgfail package(s) FAILED (see above: a panic or a timeout ends a package before its tests report)"
echo "$summary"
[ "$fail" = 0 ] && [ "$pkgfail" = 0 ]
