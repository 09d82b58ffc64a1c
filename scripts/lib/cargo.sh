# shellcheck shell=bash
# Sourced by scripts/herald and scripts/test after lib/services.sh.

# Makes sure cargo is on PATH (also finds a rustup install not yet on PATH).
herald_require_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [[ -x ${CARGO_HOME:-$HOME/.cargo}/bin/cargo ]]; then
        PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
        export PATH
    fi
    command -v cargo >/dev/null 2>&1 ||
        herald_die "cargo not found. Install the Rust toolchain (rustup, Rust 1.95 or newer) and make sure cargo is on PATH."
}
