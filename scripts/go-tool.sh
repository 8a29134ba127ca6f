#!/usr/bin/env bash
# Build a pinned Go tool from the Go module proxy into a folder, once per version.
# usage: go-tool.sh BIN_DIR NAME MODULE VERSION
# `go install module@version` refuses modules whose go.mod carries replace directives, and
# fails where the proxy serves the version but not the module's version list (it reads that
# list for deprecation notices); then the module is downloaded and built inside a copy of itself.
set -euo pipefail
bin_dir=$1 name=$2 module=$3 version=$4
stamp="$bin_dir/.$name-$version"
[ -x "$bin_dir/$name" ] && [ -f "$stamp" ] && exit 0
mkdir -p "$bin_dir"
bin_dir=$(cd "$bin_dir" && pwd)
echo "building $name $version from $module" >&2
if ! GOBIN="$bin_dir" go install "$module@$version" 2>/tmp/go-tool-$name.log; then
    grep -qE "replace directives|loading deprecation" /tmp/go-tool-$name.log || { cat /tmp/go-tool-$name.log >&2; exit 1; }
    src=$(go mod download -json "$module@$version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
    work=$(mktemp -d)
    cp -r "$src/." "$work" && chmod -R u+w "$work"
    (cd "$work" && go build -o "$bin_dir/$name" .)
    rm -rf "$work"
fi
rm -f "$bin_dir"/."$name"-*
touch "$stamp"
