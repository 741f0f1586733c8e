#!/usr/bin/env bash
# gvisor-module.sh GO DIR: makes DIR/gvisor, the gVisor module that go.mod
# requires with third_party/gvisor's files laid over its own, and DIR/go.mod,
# go.mod with a replace of gvisor.dev/gvisor by it, for `go build
# -modfile=DIR/go.mod`. It first checks that each module file is the one its
# copy in third_party/gvisor was changed from (third_party/gvisor/UPSTREAM),
# and refuses otherwise: a copy made from another version of the file would
# undo that version's own changes.
set -euo pipefail
go=${1:-go}
out=${2:?usage: gvisor-module.sh GO DIR}
cd "$(dirname "$0")/.."
"$go" mod download gvisor.dev/gvisor
src=$("$go" list -m -f '{{.Dir}}' gvisor.dev/gvisor)
while read -r sum path; do
	case $sum in '#'* | '') continue ;; esac
	if ! echo "$sum  $src/$path" | sha256sum --check --status; then
		echo "gvisor-module: $src/$path is not the file third_party/gvisor/$path was changed from;" >&2
		echo "gvisor-module: make the same change to the new file and put its hash in third_party/gvisor/UPSTREAM" >&2
		exit 1
	fi
done <third_party/gvisor/UPSTREAM
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out/gvisor.tmp"
cp -r "$src" "$out/gvisor.tmp"
chmod -R u+w "$out/gvisor.tmp"
while read -r sum path; do
	case $sum in '#'* | '') continue ;; esac
	cp "third_party/gvisor/$path" "$out/gvisor.tmp/$path"
done <third_party/gvisor/UPSTREAM
rm -rf "$out/gvisor"
mv "$out/gvisor.tmp" "$out/gvisor"
{ cat go.mod; echo; echo "replace gvisor.dev/gvisor => $out/gvisor"; } >"$out/go.mod"
cp go.sum "$out/go.sum"
