#!/usr/bin/env bash
# Installs the tools benches/compare.rs measures our `daemonize` against, from Debian's
# packages, when they are missing:
#   daemonize          daemonize(1): /usr/sbin/daemonize upstream, /usr/bin/daemonize in
#                      Debian 12 (same name as ours: the bench calls ours by absolute path)
#   daemon             libslack's daemon(1), /usr/bin/daemon
#   start-stop-daemon  dpkg (always present on Debian)
#   setsid             util-linux (always present on Debian)
#
# It also builds our `daemonize` as released: statically linked (`-C target-feature=+crt-static`),
# into target/static/HOST/release/daemonize. Static linking saves the dynamic loader's work at
# every start (see the README's benchmark section). It needs `--target HOST`: without it the flag
# would also reach the proc-macro crates (clap_derive), which cannot be built static.
#
# Runs as root without a terminal (CI). A package that cannot be installed is reported and
# skipped: the bench prints a note and leaves its rows out. Exits 0 in every such case.
#
# Usage: bash daemonize/benches/setup.sh
set -u

export DEBIAN_FRONTEND=noninteractive

# Each tool: its Debian package, then the paths the bench looks for it at.
TOOLS=(
    "daemonize /usr/sbin/daemonize /usr/bin/daemonize"
    "daemon /usr/bin/daemon"
    "dpkg /usr/sbin/start-stop-daemon /sbin/start-stop-daemon"
    "util-linux /usr/bin/setsid /bin/setsid"
)

note() { printf 'setup.sh: %s\n' "$*"; }

# The first of the given paths that is an executable file, on stdout; status 1 if none is.
find_tool() {
    local path
    for path in "$@"; do
        if [ -x "$path" ]; then
            printf '%s\n' "$path"
            return 0
        fi
    done
    return 1
}

# The packages of the tools not found, one a line.
missing_packages() {
    local entry
    for entry in "${TOOLS[@]}"; do
        # shellcheck disable=SC2086 # split "package path..." on purpose
        set -- $entry
        local package=$1
        shift
        find_tool "$@" >/dev/null || printf '%s\n' "$package"
    done
}

# Our release build, statically linked; the bench measures it next to cargo's default build.
build_static() {
    local root host
    root=$(cd "$(dirname "$0")/../.." && pwd)
    host=$(rustc -vV | sed -n 's/^host: //p')
    note "building the static release binary for $host"
    if (cd "$root" && cargo build --release -p daemonize --target "$host" \
        --target-dir "$root/target/static" \
        --config "target.$host.rustflags=['-C', 'target-feature=+crt-static']" -q); then
        note "ok: $root/target/static/$host/release/daemonize"
    else
        note "static build failed: the bench leaves its rows out"
    fi
}
build_static

mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -eq 0 ]; then
    note "all tools present"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    note "not root, cannot install: ${missing[*]}; the bench skips their rows"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    note "no apt-get (not Debian?), cannot install: ${missing[*]}; the bench skips their rows"
    exit 0
fi

note "updating the package lists"
apt-get update -qq >/dev/null 2>&1 || note "apt-get update failed; trying with the lists we have"
for package in "${missing[@]}"; do
    if apt-get install -y -qq --no-install-recommends "$package" </dev/null >/dev/null 2>&1; then
        note "installed $package"
    else
        note "package $package is unavailable: the bench skips its rows"
    fi
done

for entry in "${TOOLS[@]}"; do
    # shellcheck disable=SC2086
    set -- $entry
    shift
    if path=$(find_tool "$@"); then note "ok: $path"; else note "missing: $1"; fi
done
exit 0
