# shellcheck shell=bash
#
# Shared set-up for scripts/herald, scripts/test and scripts/stop-services.
# Source it (do not run it); it needs bash and expects `set -euo pipefail`.
#
# Targets (exported so the Rust code sees the same values):
#   HERALD_DATABASE_URL  default postgres://postgres@127.0.0.1:5432/herald
#   HERALD_NATS_URL      default nats://127.0.0.1:4222
#
# herald_setup_services:
#   * PostgreSQL: uses the server at the URL's host:port when it answers.
#     Otherwise, for a loopback host only, runs a project-local cluster in
#     <repo>/.herald/postgres (trust auth, listening on the URL's loopback
#     address and port only), installing the Debian package `postgresql` when
#     no server binaries exist. Then creates the URL's database if missing.
#   * NATS: uses the server at the URL's host:port when it answers and
#     advertises JetStream (a server you run yourself needs `-js`). Otherwise,
#     for a loopback host only, starts `nats-server -js` with its store in
#     <repo>/.herald/nats, installing the Debian package `nats-server` if needed.
#   Nothing is ever started on a non-loopback address. Running it again reuses
#   whatever is already running. scripts/stop-services stops what it started.
#
# Progress and errors go to stderr as one-line `herald-setup: ...` messages.

HERALD_ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd -P)"
HERALD_STATE_DIR="$HERALD_ROOT/.herald"

export HERALD_DATABASE_URL="${HERALD_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/herald}"
export HERALD_NATS_URL="${HERALD_NATS_URL:-nats://127.0.0.1:4222}"

HERALD_PG_TIMEOUT="${HERALD_PG_TIMEOUT:-60}"     # seconds to wait for PostgreSQL
HERALD_NATS_TIMEOUT="${HERALD_NATS_TIMEOUT:-30}" # seconds to wait for NATS

HERALD_SUDO=()

# ---------------------------------------------------------------- messages ---

herald_log() {
    printf 'herald-setup: %s\n' "$*" >&2
}

herald_die() {
    printf 'herald-setup: error: %s\n' "$*" >&2
    exit 1
}

# Repo-relative path for messages (the full path when outside the repo).
herald_rel() {
    case $1 in
        "$HERALD_ROOT"/*) printf '%s\n' "${1#"$HERALD_ROOT"/}" ;;
        *) printf '%s\n' "$1" ;;
    esac
}

# Print the last lines of a log file to stderr, indented.
herald_tail_log() {
    local file=$1
    [[ -r $file ]] || return 0
    printf 'herald-setup: last lines of %s:\n' "$(herald_rel "$file")" >&2
    tail -n "${2:-15}" "$file" | sed 's/^/    /' >&2 || true
}

# ------------------------------------------------------------------ state ---

herald_state_dir() {
    if [[ ! -d $HERALD_STATE_DIR ]]; then
        mkdir -p "$HERALD_STATE_DIR"
        chmod 755 "$HERALD_STATE_DIR"
    fi
    # Marker that lets `scripts/stop-services --purge` delete only our own dirs.
    [[ -e $HERALD_STATE_DIR/.herald-state ]] ||
        printf 'Created by scripts/lib/services.sh; scripts/stop-services --purge removes it.\n' \
            >"$HERALD_STATE_DIR/.herald-state"
}

# Serialise concurrent set-ups (e.g. scripts/test while scripts/herald starts)
# with a lock on fd 9. Every daemon is started with `9>&-` so that it does not
# inherit (and keep holding) the lock; it is released at the end of set-up.
herald_lock() {
    herald_state_dir
    exec 9>"$HERALD_STATE_DIR/setup.lock"
    if ! flock -n 9; then
        herald_log "another set-up is running; waiting for it (lock: .herald/setup.lock)"
        flock -w 600 9 || herald_die "timed out waiting for .herald/setup.lock"
    fi
}

herald_unlock() {
    exec 9>&-
}

# --------------------------------------------------------- URL helpers ---

herald_urldecode() {
    local s=${1//+/ }
    printf '%b' "${s//%/\\x}"
}

# herald_split_hostport HOSTPORT DEFAULT_PORT -> sets _host and _port
herald_split_hostport() {
    local hp=$1
    _port=$2
    if [[ $hp =~ ^\[([^]]*)\](:([0-9]*))?$ ]]; then # [ipv6]:port
        _host=${BASH_REMATCH[1]}
        [[ -n ${BASH_REMATCH[3]} ]] && _port=${BASH_REMATCH[3]}
    elif [[ $hp =~ ^([^:]*):([0-9]*)$ ]]; then
        _host=${BASH_REMATCH[1]}
        [[ -n ${BASH_REMATCH[2]} ]] && _port=${BASH_REMATCH[2]}
    else
        _host=$hp
    fi
    [[ -n $_host ]] || _host=localhost
    [[ $_port =~ ^[0-9]+$ ]] || herald_die "invalid port in '$hp'"
}

herald_is_loopback() {
    case $1 in
        localhost | *.localhost | 127.* | ::1 | 0:0:0:0:0:0:0:1) return 0 ;;
        *) return 1 ;;
    esac
}

# Address to bind a server we start for a loopback host.
herald_bind_addr() {
    case $1 in
        127.* | ::1) printf '%s\n' "$1" ;;
        *) printf '127.0.0.1\n' ;;
    esac
}

# Parses HERALD_DATABASE_URL into PG_HOST PG_PORT PG_USER PG_DB and
# PG_MAINT_URL (same server, `postgres` database, no query: used with psql)
# and PG_MAINT_URL_Q (same, keeping the query string: for the Rust tests).
herald_parse_pg_url() {
    local url=$HERALD_DATABASE_URL scheme authority userinfo="" hostport path query
    [[ $url =~ ^(postgres|postgresql)://([^/?#]*)(/([^?#]*))?(\?[^#]*)?$ ]] ||
        herald_die "HERALD_DATABASE_URL must look like postgres://user@host:port/db (got '$url')"
    scheme=${BASH_REMATCH[1]}
    authority=${BASH_REMATCH[2]}
    path=${BASH_REMATCH[4]}
    query=${BASH_REMATCH[5]}
    hostport=$authority
    if [[ $authority == *@* ]]; then
        userinfo=${authority%@*}
        hostport=${authority##*@}
    fi
    PG_HOSTPORT=$hostport
    herald_split_hostport "$hostport" 5432
    PG_HOST=$_host
    PG_PORT=$_port
    PG_USER=$(herald_urldecode "${userinfo%%:*}")
    [[ -n $PG_USER ]] || PG_USER=${PGUSER:-$(id -un)}
    PG_DB=$(herald_urldecode "$path")
    [[ -n $PG_DB ]] || PG_DB=$PG_USER
    PG_MAINT_URL="$scheme://$authority/postgres"
    # shellcheck disable=SC2034 # used by scripts/test
    PG_MAINT_URL_Q="$PG_MAINT_URL$query"
}

# Parses the first server of HERALD_NATS_URL into NATS_HOST NATS_PORT.
herald_parse_nats_url() {
    local first=${HERALD_NATS_URL%%,*} rest
    rest=${first#*://}
    rest=${rest##*@}
    rest=${rest%%/*}
    herald_split_hostport "$rest" 4222
    NATS_HOST=$_host
    NATS_PORT=$_port
}

# ------------------------------------------------------------ probing ---

herald_tcp_open() { # HOST PORT
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# ----------------------------------------------------- package installs ---

# Sets HERALD_SUDO to what runs a command as root; fails if nothing can.
herald_privileged() {
    HERALD_SUDO=()
    ((EUID == 0)) && return 0
    command -v sudo >/dev/null 2>&1 || return 1
    if sudo -n true 2>/dev/null; then
        HERALD_SUDO=(sudo -n)
        return 0
    fi
    if [[ -t 0 && -t 2 ]]; then # sudo may ask for a password on the terminal
        HERALD_SUDO=(sudo)
        return 0
    fi
    return 1
}

herald_can_install() {
    command -v apt-get >/dev/null 2>&1 && herald_privileged
}

# herald_apt_install WHAT PACKAGE... (dies with instructions if impossible)
herald_apt_install() {
    local what=$1 log
    shift
    if ! herald_can_install; then
        herald_die "$what not found, and it cannot be installed automatically (needs apt-get and root or sudo). Install it with: sudo apt-get install -y --no-install-recommends $*"
    fi
    herald_state_dir
    log="$HERALD_STATE_DIR/apt.log"
    local -a apt=("${HERALD_SUDO[@]}" env DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1
        apt-get -q -y -o DPkg::Lock::Timeout=300)
    herald_log "$what not found; installing Debian package(s) $* (log: $(herald_rel "$log"))"
    if ! "${apt[@]}" install --no-install-recommends "$@" >>"$log" 2>&1; then
        herald_log "apt-get install failed; running apt-get update and retrying"
        if ! { "${apt[@]}" update && "${apt[@]}" install --no-install-recommends "$@"; } >>"$log" 2>&1; then
            herald_tail_log "$log"
            herald_die "could not install $*; see $(herald_rel "$log"). Install it yourself: sudo apt-get install -y --no-install-recommends $*"
        fi
    fi
}

# ------------------------------------------------------------ PostgreSQL ---

# Client tools: PATH first, then the server's bindir.
herald_pg_client() { # NAME -> path or empty
    local name=$1 c
    if command -v "$name" >/dev/null 2>&1; then
        command -v "$name"
        return 0
    fi
    for c in $(printf '%s\n' /usr/lib/postgresql/*/bin/"$name" | sort -rV); do
        [[ -x $c ]] && { printf '%s\n' "$c"; return 0; }
    done
    return 0
}

# 0 = accepting connections, 1 = answering but not ready yet, 2 = unreachable.
herald_pg_probe() {
    local isready rc=0
    isready=$(herald_pg_client pg_isready)
    if [[ -n $isready ]]; then
        "$isready" -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -t 3 >/dev/null 2>&1 || rc=$?
        case $rc in
            0) return 0 ;;
            1) return 1 ;;
            *) return 2 ;;
        esac
    fi
    herald_tcp_open "$PG_HOST" "$PG_PORT" && return 0
    return 2
}

herald_pg_wait_ready() { # SECONDS LOGFILE-or-empty
    local deadline=$((SECONDS + $1)) rc
    while :; do
        rc=0
        herald_pg_probe || rc=$?
        ((rc == 0)) && return 0
        if ((SECONDS >= deadline)); then
            [[ -n ${2:-} ]] && herald_tail_log "$2"
            herald_die "PostgreSQL at $PG_HOST:$PG_PORT did not become ready within $1s${2:+; see $(herald_rel "$2")}"
        fi
        sleep 0.5
    done
}

# Directory of postgres/initdb/pg_ctl for the local cluster ("" if none).
# Prefers the major version that created an existing data dir.
herald_pg_bindir() {
    local datadir=${1:-} want="" d p
    if [[ -n ${HERALD_PG_BINDIR:-} ]]; then
        printf '%s\n' "$HERALD_PG_BINDIR"
        return 0
    fi
    if [[ -n $datadir && -r $datadir/PG_VERSION ]]; then
        want=$(<"$datadir/PG_VERSION")
        if [[ -x /usr/lib/postgresql/$want/bin/postgres ]]; then
            printf '%s\n' "/usr/lib/postgresql/$want/bin"
            return 0
        fi
    fi
    for p in $(printf '%s\n' /usr/lib/postgresql/*/bin/postgres | sort -rV); do
        if [[ -x $p ]]; then
            printf '%s\n' "${p%/postgres}"
            return 0
        fi
    done
    if p=$(command -v postgres 2>/dev/null); then
        d=$(dirname "$(readlink -f "$p")")
        [[ -x $d/initdb && -x $d/pg_ctl ]] && printf '%s\n' "$d"
    fi
    return 0
}

# Data dir of the project-local cluster: the one recorded in
# .herald/postgres.datadir, else .herald/postgres.
herald_pg_datadir() {
    local rec="$HERALD_STATE_DIR/postgres.datadir"
    if [[ -s $rec ]]; then
        cat "$rec"
    else
        printf '%s\n' "$HERALD_STATE_DIR/postgres"
    fi
}

# Picks (and records) the data dir for a new cluster: .herald/postgres, unless
# we are root and the postgres user cannot reach .herald (a repo under /root,
# say): then a directory under /var/tmp named after the repo path.
herald_pg_choose_datadir() {
    local base=$HERALD_STATE_DIR
    if [[ ! -s $HERALD_STATE_DIR/postgres.datadir ]]; then
        if ((EUID == 0)) && ! herald_as_user postgres test -x "$HERALD_STATE_DIR" 2>/dev/null; then
            base="/var/tmp/herald-$(printf '%s' "$HERALD_ROOT" | cksum | cut -d' ' -f1)"
            herald_log "the postgres user cannot reach $(herald_rel "$HERALD_STATE_DIR"); keeping the cluster in $base instead"
        fi
        printf '%s\n' "$base/postgres" >"$HERALD_STATE_DIR/postgres.datadir"
    fi
    herald_pg_datadir
}

# Run a command as USER (only used as root).
herald_as_user() {
    local user=$1
    shift
    if command -v runuser >/dev/null 2>&1; then
        (cd / && runuser -u "$user" -- "$@")
    else
        local cmd
        cmd=$(printf '%q ' "$@")
        (cd / && su -s /bin/sh "$user" -c "$cmd")
    fi
}

# Run a command as the owner of DIR when we are root and it is not ours.
herald_as_owner() {
    local dir=$1 owner
    shift
    owner=$(stat -c %U "$dir")
    if ((EUID == 0)) && [[ $owner != root ]]; then
        herald_as_user "$owner" "$@"
    else
        "$@"
    fi
}

herald_ensure_postgres_user() {
    getent passwd postgres >/dev/null 2>&1 && return 0
    herald_log "creating system user 'postgres' (PostgreSQL refuses to run as root)"
    useradd --system --user-group --home-dir /var/lib/postgresql --no-create-home \
        --shell /bin/sh --comment "PostgreSQL administrator" postgres ||
        herald_die "could not create the 'postgres' system user"
}

# Keep the Debian package from creating and starting its own cluster on
# 5432 (password auth on TCP) when we install it just to get the binaries.
# Only written when the file does not exist yet; an admin's choice stays.
herald_pg_no_default_cluster() {
    local conf=/etc/postgresql-common/createcluster.conf
    [[ -e $conf ]] && return 0
    herald_log "writing create_main_cluster = false to $conf so the package does not start its own cluster"
    "${HERALD_SUDO[@]}" mkdir -p /etc/postgresql-common
    printf '# Written by Herald scripts/lib/services.sh before installing PostgreSQL.\ncreate_main_cluster = false\n' |
        "${HERALD_SUDO[@]}" tee "$conf" >/dev/null
}

herald_install_postgres_server() {
    if herald_can_install; then
        herald_pg_no_default_cluster
    fi
    herald_apt_install "PostgreSQL server" postgresql
}

# Start (creating it first if needed) the project-local cluster.
herald_pg_start_local() {
    local bindir datadir base sockdir log conf owner bind rc
    herald_state_dir
    bindir=$(herald_pg_bindir "$(herald_pg_datadir)")
    if [[ -z $bindir ]]; then
        herald_install_postgres_server
        bindir=$(herald_pg_bindir "$(herald_pg_datadir)")
        [[ -n $bindir ]] || herald_die "PostgreSQL server binaries still not found after installing (looked for /usr/lib/postgresql/*/bin/postgres)"
    fi
    if ((EUID == 0)); then
        herald_ensure_postgres_user
        owner=postgres
    else
        owner=$(id -un)
    fi
    datadir=$(herald_pg_choose_datadir)
    base=$(dirname "$datadir")
    sockdir="$base/pg-run"
    log="$base/postgres.log"
    if [[ -r $datadir/PG_VERSION && -z ${HERALD_PG_BINDIR:-} &&
        ! -x /usr/lib/postgresql/$(<"$datadir/PG_VERSION")/bin/postgres ]]; then
        herald_log "warning: $(herald_rel "$datadir") was made by PostgreSQL $(<"$datadir/PG_VERSION"), which is not installed; trying $bindir"
    fi

    if [[ ! -d $datadir ]]; then
        mkdir -p "$datadir"
        chmod 700 "$datadir"
        ((EUID == 0)) && chown postgres: "$datadir"
    fi
    mkdir -p "$sockdir"
    touch "$log"
    if ((EUID == 0)); then
        chown postgres: "$sockdir" "$log"
    elif [[ $(stat -c %U "$datadir") != "$owner" ]]; then
        herald_die "$(herald_rel "$datadir") belongs to $(stat -c %U "$datadir"); run as root, or remove it (scripts/stop-services --purge as root)"
    fi

    if [[ ! -s $datadir/PG_VERSION ]]; then
        herald_log "initialising a project-local PostgreSQL cluster in $(herald_rel "$datadir") ($bindir/initdb)"
        if ! herald_as_owner "$datadir" "$bindir/initdb" -D "$datadir" --auth=trust -U postgres \
            --encoding=UTF8 --no-locale >>"$log" 2>&1 9>&-; then
            herald_tail_log "$log"
            herald_die "initdb failed; see $(herald_rel "$log")"
        fi
        printf "\n# Herald: listen address, port and socket dir (rewritten on every start)\ninclude_if_exists 'herald.conf'\n" \
            >>"$datadir/postgresql.conf"
    fi

    # Settings for this start: loopback only, the URL's port, socket in .herald.
    bind=$(herald_bind_addr "$PG_HOST")
    local sock_setting=${sockdir//\'/\'\'}
    # A Unix socket path must stay under 108 bytes; TCP alone is enough then.
    if ((${#sockdir} + 20 > 107)); then sock_setting=""; fi
    conf="$datadir/herald.conf"
    {
        printf '# Written by scripts/lib/services.sh on every start; edits are lost.\n'
        printf "listen_addresses = '%s'\n" "$bind"
        printf 'port = %s\n' "$PG_PORT"
        printf "unix_socket_directories = '%s'\n" "$sock_setting"
        printf 'max_connections = 200\n'
    } >"$conf"
    ((EUID == 0)) && chown postgres: "$conf"

    rc=0
    herald_as_owner "$datadir" "$bindir/pg_ctl" -D "$datadir" status >/dev/null 2>&1 || rc=$?
    if ((rc == 0)); then
        herald_die "the project-local PostgreSQL in $(herald_rel "$datadir") is running but does not answer on $PG_HOST:$PG_PORT (started for another URL?); run scripts/stop-services and retry"
    fi

    herald_log "starting project-local PostgreSQL on $bind:$PG_PORT (log: $(herald_rel "$log"))"
    # shellcheck disable=SC2094 # pg_ctl and postgres both only append to the log
    if ! herald_as_owner "$datadir" "$bindir/pg_ctl" -D "$datadir" -l "$log" -w -t "$HERALD_PG_TIMEOUT" \
        start >/dev/null 2>>"$log" 9>&-; then
        herald_tail_log "$log"
        herald_die "PostgreSQL failed to start (or was not ready within ${HERALD_PG_TIMEOUT}s); see $(herald_rel "$log")"
    fi
    herald_pg_wait_ready "$HERALD_PG_TIMEOUT" "$log"
    HERALD_PG_LOCAL=1
}

# True if our cluster's postmaster.pid says it runs on PORT.
herald_pg_local_running_on() {
    local pidfile
    pidfile="$(herald_pg_datadir)/postmaster.pid"
    [[ -r $pidfile ]] || return 1
    [[ $(sed -n 4p "$pidfile") == "$1" ]] || return 1
    kill -0 "$(head -n 1 "$pidfile")" 2>/dev/null
}

# Run SQL (from stdin, so psql's :'var' / :"var" quoting works) on URL.
herald_psql() { # URL [psql args...]
    local url=$1
    shift
    PGCONNECT_TIMEOUT=5 "$HERALD_PSQL" -X -q -A -t -v ON_ERROR_STOP=1 -d "$url" "$@"
}

herald_ensure_database() {
    local out
    HERALD_PSQL=$(herald_pg_client psql)
    if [[ -z $HERALD_PSQL ]]; then
        herald_apt_install "psql (PostgreSQL client)" postgresql-client
        HERALD_PSQL=$(herald_pg_client psql)
        [[ -n $HERALD_PSQL ]] || herald_die "psql still not found after installing postgresql-client"
    fi

    # On our own trust cluster, a URL user other than postgres gets a role.
    if [[ ${HERALD_PG_LOCAL:-0} == 1 && $PG_USER != postgres ]]; then
        local admin_url="postgresql://postgres@$PG_HOSTPORT/postgres"
        herald_log "making sure role '$PG_USER' exists on the project-local cluster"
        if ! out=$(printf '%s\n' \
            "SELECT format('CREATE ROLE %I LOGIN SUPERUSER', :'u') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'u') \\gexec" |
            herald_psql "$admin_url" -v u="$PG_USER" 2>&1); then
            herald_die "could not create role '$PG_USER' on the local cluster: $out"
        fi
    fi

    if ! out=$(printf '%s\n' "SELECT 1 FROM pg_database WHERE datname = :'db';" |
        herald_psql "$PG_MAINT_URL" -v db="$PG_DB" 2>&1); then
        herald_die "cannot connect to PostgreSQL as '$PG_USER' at $PG_HOST:$PG_PORT (database postgres): ${out//$'\n'/ }"
    fi
    if [[ $out == 1 ]]; then
        herald_log "database '$PG_DB' exists"
        return 0
    fi
    herald_log "creating database '$PG_DB' on $PG_HOST:$PG_PORT"
    if ! out=$(printf '%s\n' 'CREATE DATABASE :"db";' | herald_psql "$PG_MAINT_URL" -v db="$PG_DB" 2>&1); then
        # Lost a race with another creator? Then it exists now.
        [[ $(printf '%s\n' "SELECT 1 FROM pg_database WHERE datname = :'db';" |
            herald_psql "$PG_MAINT_URL" -v db="$PG_DB" 2>/dev/null) == 1 ]] ||
            herald_die "could not create database '$PG_DB': ${out//$'\n'/ }"
    fi
}

herald_setup_postgres() {
    local rc=0
    HERALD_PG_LOCAL=0
    herald_parse_pg_url
    herald_pg_probe || rc=$?
    if ((rc != 2)); then
        if herald_pg_local_running_on "$PG_PORT"; then
            HERALD_PG_LOCAL=1
            herald_log "project-local PostgreSQL ($(herald_rel "$(herald_pg_datadir)")) already running at $PG_HOST:$PG_PORT; using it"
        else
            herald_log "PostgreSQL reachable at $PG_HOST:$PG_PORT; using it"
        fi
        ((rc == 0)) || herald_pg_wait_ready "$HERALD_PG_TIMEOUT" ""
    elif herald_tcp_open "$PG_HOST" "$PG_PORT"; then
        herald_die "something listens on $PG_HOST:$PG_PORT but does not answer like PostgreSQL; check HERALD_DATABASE_URL or free that port"
    elif herald_is_loopback "$PG_HOST"; then
        herald_log "no PostgreSQL at $PG_HOST:$PG_PORT; using a project-local one"
        herald_pg_start_local
    else
        herald_die "PostgreSQL at $PG_HOST:$PG_PORT (from HERALD_DATABASE_URL) is unreachable, and it is not a loopback address, so nothing is started for it. Start that server or point HERALD_DATABASE_URL elsewhere."
    fi
    herald_ensure_database
}

# ------------------------------------------------------------------ NATS ---

# First protocol line the server sends (INFO {...}), or fails.
herald_nats_info() {
    local line
    # shellcheck disable=SC2016 # expanded by the inner bash
    line=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/$1/$2" || exit 1
        IFS= read -r -t 4 line <&3 || exit 1
        printf "%s\n" "$line"' _ "$NATS_HOST" "$NATS_PORT" 2>/dev/null) || return 1
    printf '%s\n' "${line%$'\r'}"
}

# Checks that whatever answers on NATS_HOST:NATS_PORT is NATS with JetStream.
herald_nats_check_jetstream() {
    local info
    info=$(herald_nats_info) || info=""
    if [[ $info != INFO\ * ]]; then
        herald_die "something listens on $NATS_HOST:$NATS_PORT but it did not greet like a NATS server; check HERALD_NATS_URL"
    fi
    if [[ $info != *'"jetstream":true'* ]]; then
        herald_die "the NATS server at $NATS_HOST:$NATS_PORT does not have JetStream enabled; restart it with -js (nats-server -js ...) or point HERALD_NATS_URL at one that has"
    fi
}

herald_nats_server_bin() {
    if command -v nats-server >/dev/null 2>&1; then
        command -v nats-server
    elif [[ -x /usr/sbin/nats-server ]]; then
        printf '/usr/sbin/nats-server\n'
    fi
    return 0
}

# PID from .herald/nats.pid if that process is our nats-server.
herald_nats_pid() {
    local pidfile="$HERALD_STATE_DIR/nats.pid" pid
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "nats-server.*$HERALD_STATE_DIR/nats" || return 1
    printf '%s\n' "$pid"
}

herald_nats_start_local() {
    local bin bind log pid
    herald_state_dir
    bin=$(herald_nats_server_bin)
    if [[ -z $bin ]]; then
        herald_apt_install nats-server nats-server
        bin=$(herald_nats_server_bin)
        [[ -n $bin ]] || herald_die "nats-server still not found after installing it"
        # The package enables a systemd service without JetStream on 4222; we
        # only wanted the binary.
        if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
            herald_log "disabling the packaged nats-server.service (no JetStream); Herald runs its own"
            "${HERALD_SUDO[@]}" systemctl disable --now nats-server.service >/dev/null 2>&1 || true
        fi
    fi
    if pid=$(herald_nats_pid); then
        herald_die "the project-local nats-server (pid $pid) is running but does not answer on $NATS_HOST:$NATS_PORT (started for another URL?); run scripts/stop-services and retry"
    fi
    bind=$(herald_bind_addr "$NATS_HOST")
    log="$HERALD_STATE_DIR/nats.log"
    mkdir -p "$HERALD_STATE_DIR/nats"
    herald_log "starting project-local nats-server -js on $bind:$NATS_PORT (log: $(herald_rel "$log"))"
    # setsid: keep it out of the terminal's process group (Ctrl-C on herald).
    setsid nohup "$bin" -js -a "$bind" -p "$NATS_PORT" -sd "$HERALD_STATE_DIR/nats" \
        </dev/null >>"$log" 2>&1 9>&- &
    pid=$!
    printf '%s\n' "$pid" >"$HERALD_STATE_DIR/nats.pid"

    local deadline=$((SECONDS + HERALD_NATS_TIMEOUT))
    until herald_tcp_open "$NATS_HOST" "$NATS_PORT"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$HERALD_STATE_DIR/nats.pid"
            herald_tail_log "$log"
            herald_die "nats-server exited during start-up; see $(herald_rel "$log") (is port $NATS_PORT taken?)"
        fi
        if ((SECONDS >= deadline)); then
            herald_tail_log "$log"
            herald_die "nats-server did not answer on $NATS_HOST:$NATS_PORT within ${HERALD_NATS_TIMEOUT}s; see $(herald_rel "$log")"
        fi
        sleep 0.3
    done
    herald_nats_check_jetstream
}

herald_setup_nats() {
    herald_parse_nats_url
    if herald_tcp_open "$NATS_HOST" "$NATS_PORT"; then
        herald_nats_check_jetstream
        local pid
        if pid=$(herald_nats_pid) && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "-p $NATS_PORT "; then
            herald_log "project-local nats-server (pid $pid) already running at $NATS_HOST:$NATS_PORT with JetStream; using it"
        else
            herald_log "NATS reachable at $NATS_HOST:$NATS_PORT with JetStream; using it"
        fi
    elif herald_is_loopback "$NATS_HOST"; then
        herald_log "no NATS at $NATS_HOST:$NATS_PORT; using a project-local nats-server"
        herald_nats_start_local
        herald_log "NATS ready at $NATS_HOST:$NATS_PORT with JetStream"
    else
        herald_die "NATS at $NATS_HOST:$NATS_PORT (from HERALD_NATS_URL) is unreachable, and it is not a loopback address, so nothing is started for it. Start that server (with -js) or point HERALD_NATS_URL elsewhere."
    fi
}

# ------------------------------------------------------------- entry ---

herald_setup_services() {
    herald_lock
    herald_setup_postgres
    herald_setup_nats
    herald_unlock
}

# ----------------------------------------------------------- stopping ---

herald_stop_services() {
    local datadir bindir pid i
    herald_parse_pg_url

    # nats-server we started (pid file + command line check).
    if pid=$(herald_nats_pid); then
        herald_log "stopping project-local nats-server (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            herald_log "nats-server did not stop in 10s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    else
        herald_log "no project-local nats-server running"
    fi
    rm -f "$HERALD_STATE_DIR/nats.pid"

    # PostgreSQL cluster in .herald (or where .herald/postgres.datadir says).
    datadir=""
    [[ -d $HERALD_STATE_DIR ]] && datadir=$(herald_pg_datadir)
    if [[ -n $datadir && -s $datadir/postmaster.pid ]]; then
        bindir=$(herald_pg_bindir "$datadir")
        herald_log "stopping project-local PostgreSQL in $(herald_rel "$datadir")"
        if [[ -n $bindir ]]; then
            herald_as_owner "$datadir" "$bindir/pg_ctl" -D "$datadir" -m fast -w -t 60 stop >/dev/null ||
                herald_die "pg_ctl stop failed for $(herald_rel "$datadir")"
        else
            pid=$(head -n 1 "$datadir/postmaster.pid")
            kill -INT "$pid" 2>/dev/null || true
        fi
    else
        herald_log "no project-local PostgreSQL running"
    fi
}

herald_purge_state() {
    local datadir base
    [[ -d $HERALD_STATE_DIR ]] || return 0
    [[ -e $HERALD_STATE_DIR/.herald-state ]] ||
        herald_die "$HERALD_STATE_DIR has no .herald-state marker; not deleting it"
    datadir=$(herald_pg_datadir)
    base=$(dirname "$datadir")
    if [[ $base != "$HERALD_STATE_DIR" && $base == /var/tmp/herald-* && -d $base ]]; then
        herald_log "removing $base"
        rm -rf -- "$base"
    fi
    herald_log "removing .herald/"
    rm -rf -- "$HERALD_STATE_DIR"
}
