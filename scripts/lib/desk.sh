# shellcheck shell=bash
# Sourced by scripts/herald and scripts/test after lib/services.sh (herald_log,
# herald_die, herald_apt_install, HERALD_ROOT).
#
# herald_build_desk:
#   Builds the desk (desk/, a Vite project) into desk/dist, which the API serves
#   at its origin. `npm ci` runs when desk/node_modules is missing or older than
#   desk/package-lock.json; `npm run build` when a source is newer than
#   desk/dist. Needs Node.js 20 or newer and npm; nothing is fetched at run time.
#   HERALD_SKIP_DESK_BUILD=1 skips it (the API then answers 404 for the desk).
#
# herald_require_chromium:
#   The browser tests drive Debian's chromium (HERALD_CHROMIUM, default
#   /usr/bin/chromium); it is installed with apt-get as root or with sudo when
#   missing, otherwise the apt-get line to run is printed.

HERALD_DESK_DIR_SRC="$HERALD_ROOT/desk"

herald_require_node() {
    local version major
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        herald_die "node and npm are needed to build the desk (desk/). Install Node.js 20 or newer with npm, e.g. on Debian 12: sudo apt-get install -y nodejs npm (Debian's nodejs is 18; use NodeSource or nvm for 20), or set HERALD_SKIP_DESK_BUILD=1 to run without the desk"
    fi
    version=$(node --version 2>/dev/null || true)
    major=${version#v}
    major=${major%%.*}
    if ! [[ $major =~ ^[0-9]+$ ]] || ((major < 20)); then
        herald_die "the desk needs Node.js 20 or newer; this node is ${version:-unknown}. Install a newer Node.js (NodeSource or nvm), or set HERALD_SKIP_DESK_BUILD=1 to run without the desk"
    fi
}

# True when some file under desk/ that makes the build (sources, config, lock) is
# newer than desk/dist/index.html.
herald_desk_stale() {
    local stamp="$HERALD_DESK_DIR_SRC/dist/index.html"
    [[ -e $stamp ]] || return 0
    [[ -n $(find "$HERALD_DESK_DIR_SRC/src" "$HERALD_DESK_DIR_SRC/index.html" \
        "$HERALD_DESK_DIR_SRC/vite.config.ts" "$HERALD_DESK_DIR_SRC/tsconfig.json" \
        "$HERALD_DESK_DIR_SRC/package-lock.json" -newer "$stamp" -print -quit 2>/dev/null) ]]
}

herald_build_desk() {
    if [[ ${HERALD_SKIP_DESK_BUILD:-0} == 1 ]]; then
        herald_log "HERALD_SKIP_DESK_BUILD=1: not building the desk"
        return 0
    fi
    [[ -f $HERALD_DESK_DIR_SRC/package.json ]] || herald_die "desk/package.json not found in $HERALD_ROOT"
    local modules="$HERALD_DESK_DIR_SRC/node_modules"
    local lock="$HERALD_DESK_DIR_SRC/package-lock.json"
    if [[ ! -d $modules || $lock -nt $modules/.package-lock.json ]]; then
        herald_require_node
        herald_log "installing the desk's build tools (npm ci in desk/)"
        if ! (cd "$HERALD_DESK_DIR_SRC" && npm ci --no-audit --no-fund --loglevel=error >&2); then
            herald_die "npm ci failed in desk/ (is the npm registry reachable?)"
        fi
    fi
    if herald_desk_stale; then
        herald_require_node
        herald_log "building the desk (npm run build in desk/, into desk/dist)"
        if ! (cd "$HERALD_DESK_DIR_SRC" && npm run --silent build >&2); then
            herald_die "the desk's build failed (npm run build in desk/)"
        fi
    else
        herald_log "desk/dist is up to date"
    fi
    export HERALD_DESK_DIR="${HERALD_DESK_DIR:-$HERALD_DESK_DIR_SRC/dist}"
}

herald_require_chromium() {
    local browser=${HERALD_CHROMIUM:-/usr/bin/chromium}
    if [[ -x $browser ]]; then
        export HERALD_CHROMIUM="$browser"
        return 0
    fi
    if [[ $browser != /usr/bin/chromium ]]; then
        herald_die "HERALD_CHROMIUM=$browser is not an executable browser"
    fi
    herald_apt_install "chromium (for the desk's browser tests)" chromium
    [[ -x $browser ]] || herald_die "chromium still not found at $browser after installing it"
    export HERALD_CHROMIUM="$browser"
}
