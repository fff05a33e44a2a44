# shellcheck shell=bash
# Local repmgr clusters for the demo (scripts/demo.sh) and the benchmarks
# (bench/*): sourced, not run. Each node lives in $CL_DIR/<name>/ with
#   data/          its data directory (postgresql.conf includes data/local.conf)
#   repmgr.conf    its repmgr configuration
#   server.log     the PostgreSQL log
#   repmgrd.log    the repmgrd log, repmgrd.pid its pid file
# Servers listen on 127.0.0.1 and on a unix socket in the node dir only.
#
# Before sourcing set CL_DIR (the cluster's dir). As root, everything runs as
# $CL_USER (default postgres): PostgreSQL and repmgr refuse to run as root.

CL_USER=${CL_USER:-postgres}
if [[ $(id -u) -ne 0 ]]; then
    CL_USER=$(id -un)
fi
CL_BIN="$CL_DIR/bin"

cl_pg_bindir() {
    local d
    if command -v pg_config >/dev/null 2>&1; then
        d=$(pg_config --bindir 2>/dev/null || true)
        if [[ -x "$d/initdb" ]]; then
            echo "$d"
            return
        fi
    fi
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}
PGBIN=$(cl_pg_bindir)

cl_die() {
    echo "error: $*" >&2
    exit 1
}

cl_check_tools() {
    [[ -x "$PGBIN/initdb" ]] || cl_die "PostgreSQL server binaries not found (install postgresql-15)"
    command -v rsync >/dev/null 2>&1 || cl_die "rsync is not installed (needed for standby clone --rsync-only)"
    id "$CL_USER" >/dev/null 2>&1 || cl_die "OS user $CL_USER does not exist"
}

# Run a command as the cluster user, in $CL_DIR, with repmgr and the
# PostgreSQL tools first in PATH.
cl_as_user() {
    if [[ $(id -u) -eq 0 ]]; then
        (cd "$CL_DIR" && runuser -u "$CL_USER" -- env HOME="$CL_DIR" LC_ALL=C \
            PATH="$CL_BIN:$PGBIN:$PATH" "$@")
    else
        (cd "$CL_DIR" && env LC_ALL=C PATH="$CL_BIN:$PGBIN:$PATH" "$@")
    fi
}

# Files written by the scripts belong to the cluster user.
cl_own() {
    if [[ $(id -u) -eq 0 ]]; then chown -R "$CL_USER:" "$@"; fi
}

# Create $CL_DIR (must not exist) with a copy of the release binary from
# the repository at $1 (built beforehand) and a repmgrd symlink. With
# CL_IMPL=repmgr5 the binaries are Debian's repmgr 5.3 instead
# (postgresql-15-repmgr; see cl_need_repmgr5), and every server preloads
# its extension.
cl_setup_dir() {
    local root=$1
    mkdir -p "$CL_BIN"
    if [[ ${CL_IMPL:-ours} == repmgr5 ]]; then
        ln -sf "$PGBIN/repmgr" "$CL_BIN/repmgr"
        ln -sf "$PGBIN/repmgrd" "$CL_BIN/repmgrd"
    else
        install -m 0755 "$root/target/release/repmgr" "$CL_BIN/repmgr"
        ln -sf repmgr "$CL_BIN/repmgrd"
    fi
    chmod 0700 "$CL_DIR"
    cl_own "$CL_DIR"
}

# Debian's repmgr 5.3, installed when missing (as root, with apt-get).
cl_need_repmgr5() {
    [[ -x "$PGBIN/repmgrd" && -x "$PGBIN/repmgr" ]] && return 0
    if [[ $(id -u) -ne 0 ]]; then
        cl_die "repmgr 5.3 is not installed: run as root (it is installed then) or apt-get install postgresql-15-repmgr"
    fi
    echo "installing Debian's repmgr 5.3 (postgresql-15-repmgr) to run beside ours..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-15-repmgr >/dev/null ||
        cl_die "apt-get install postgresql-15-repmgr failed"
}

# A loopback TCP port nothing listens on (and not handed out before by
# this shell).
CL_PORTS_USED=" "
# Below the kernel's ephemeral range: a port there may be the local end
# of one of the cluster's own client connections, which accepts nothing
# (so the probe below finds it free) yet makes a server's bind fail.
cl_free_port() {
    local p lo
    read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || lo=32768
    ((lo > 12000)) || lo=32768
    for _ in $(seq 1 200); do
        p=$((10000 + RANDOM % (lo - 10000)))
        [[ $CL_PORTS_USED == *" $p "* ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            CL_PORTS_USED+="$p "
            echo "$p"
            return
        fi
    done
    cl_die "no free loopback port found"
}

cl_port() { sed -n "s/^port = //p" "$CL_DIR/$1/data/local.conf"; }

# psql on node $1 over its unix socket: cl_psql node1 -c 'SELECT 1'
cl_psql() {
    local n=$1
    shift
    cl_as_user psql -X -q -A -t -h "$CL_DIR/$n" -p "$(cl_port "$n")" -U postgres -d postgres "$@"
}

# Write data/local.conf of node $1 (port $2) and include it from
# postgresql.conf (a clone inherits the include and gets its own file).
cl_local_conf() {
    local n=$1 port=$2 d="$CL_DIR/$1/data"
    cat >"$d/local.conf" <<EOF
# this node's settings (written by scripts/cluster-lib.sh)
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$CL_DIR/$n'
cluster_name = '$n'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
wal_keep_size = '128MB'
wal_log_hints = on
shared_buffers = '16MB'
max_connections = 30
fsync = off
log_line_prefix = '%m [%p] '
EOF
    if [[ ${CL_IMPL:-ours} == repmgr5 ]]; then
        echo "shared_preload_libraries = 'repmgr'" >>"$d/local.conf"
    fi
    grep -qx "include 'local.conf'" "$d/postgresql.conf" ||
        printf "\ninclude 'local.conf'\n" >>"$d/postgresql.conf"
    cl_own "$d"
}

# Write $CL_DIR/<name>/repmgr.conf: id name port [extra lines...]
cl_repmgr_conf() {
    local id=$1 n=$2 port=$3
    shift 3
    mkdir -p "$CL_DIR/$n"
    {
        echo "node_id=$id"
        echo "node_name='$n'"
        echo "conninfo='host=127.0.0.1 port=$port user=postgres dbname=postgres connect_timeout=2'"
        echo "data_directory='$CL_DIR/$n/data'"
        echo "pg_bindir='$PGBIN'"
        echo "log_file='$CL_DIR/$n/repmgrd.log'"
        echo "repmgrd_pid_file='$CL_DIR/$n/repmgrd.pid'"
        printf '%s\n' "$@"
    } >"$CL_DIR/$n/repmgr.conf"
    cl_own "$CL_DIR/$n"
}

cl_repmgr() { # node args...
    local n=$1
    shift
    cl_as_user repmgr -f "$CL_DIR/$n/repmgr.conf" "$@"
}

cl_start() { # node
    cl_as_user pg_ctl -D "$CL_DIR/$1/data" -l "$CL_DIR/$1/server.log" -w -t 60 start >/dev/null || {
        tail -n 20 "$CL_DIR/$1/server.log" >&2
        cl_die "the server of $1 did not start (its log above)"
    }
}

# initdb and start node $1 (its repmgr.conf written already) as a primary.
cl_init_primary() {
    local n=$1 port
    port=$(sed -n "s/.*port=\([0-9]*\) .*/\1/p" "$CL_DIR/$n/repmgr.conf")
    cl_as_user initdb -D "$CL_DIR/$n/data" -A trust -U postgres -N -E UTF8 --locale=C \
        --no-instructions >/dev/null
    cl_local_conf "$n" "$port"
    cl_start "$n"
}

# `repmgr standby clone` of node $1 (its repmgr.conf written already) from
# node $2; $3.. extra clone options (e.g. --rsync-only). Then start it.
# The clone's output goes to stdout unless CL_QUIET is set.
cl_clone_and_start() {
    local n=$1 from=$2 port
    shift 2
    port=$(sed -n "s/.*port=\([0-9]*\) .*/\1/p" "$CL_DIR/$n/repmgr.conf")
    if [[ -n ${CL_QUIET:-} ]]; then
        cl_repmgr "$n" -h 127.0.0.1 -p "$(cl_port "$from")" -U postgres -d postgres \
            standby clone -c "$@" >"$CL_DIR/$n/clone.log" 2>&1 ||
            { cat "$CL_DIR/$n/clone.log" >&2; cl_die "standby clone of $n failed"; }
    else
        cl_repmgr "$n" -h 127.0.0.1 -p "$(cl_port "$from")" -U postgres -d postgres \
            standby clone -c "$@" 2>&1
    fi
    cl_local_conf "$n" "$port"
    cl_start "$n"
}

# Is node $1 a running primary (answers and is not in recovery)?
cl_is_primary() {
    [[ $(cl_psql "$1" -c 'SELECT NOT pg_is_in_recovery()' 2>/dev/null) == t ]]
}

# Does node $2 stream from node $1?
cl_streams_from() {
    [[ $(cl_psql "$1" -c "SELECT count(*) FROM pg_stat_replication WHERE application_name = '$2' AND state = 'streaming'" 2>/dev/null) == 1 ]]
}

# Bounded poll: cl_wait SECONDS DESCRIPTION COMMAND... (every 0.1 s).
cl_wait() {
    local secs=$1 what=$2
    shift 2
    local end=$((SECONDS + secs))
    until "$@"; do
        if ((SECONDS >= end)); then
            echo "timed out after ${secs}s waiting for $what" >&2
            return 1
        fi
        sleep 0.1
    done
}

cl_postmaster_pid() { head -n 1 "$CL_DIR/$1/data/postmaster.pid" 2>/dev/null; }

# Start repmgrd (daemonized) on node $1; wait until its pid file names a
# live process.
cl_start_repmgrd() {
    local n=$1
    rm -f "$CL_DIR/$n/repmgrd.pid"
    touch "$CL_DIR/$n/repmgrd.log"
    cl_own "$CL_DIR/$n/repmgrd.log"
    cl_as_user repmgrd -f "$CL_DIR/$n/repmgr.conf" >>"$CL_DIR/$n/repmgrd.log" 2>&1 ||
        { tail -n 20 "$CL_DIR/$n/repmgrd.log" >&2; cl_die "repmgrd on $n did not start"; }
    cl_wait 20 "repmgrd pid file of $n" cl_repmgrd_alive "$n" ||
        { tail -n 20 "$CL_DIR/$n/repmgrd.log" >&2; cl_die "repmgrd on $n did not start"; }
}

cl_repmgrd_pid() { head -n 1 "$CL_DIR/$1/repmgrd.pid" 2>/dev/null; }

cl_repmgrd_alive() {
    local pid
    pid=$(cl_repmgrd_pid "$1")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

# SIGTERM every repmgrd with a pid file, wait up to 10 s for each to exit,
# then SIGKILL what is left.
cl_stop_repmgrds() {
    local f pid pids=()
    for f in "$CL_DIR"/*/repmgrd.pid; do
        [[ -f $f ]] || continue
        pid=$(head -n 1 "$f")
        [[ $pid =~ ^[0-9]+$ ]] || continue
        kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
    done
    local end=$((SECONDS + 10)) p
    for p in "${pids[@]}"; do
        while kill -0 "$p" 2>/dev/null && ((SECONDS < end)); do sleep 0.1; done
        if kill -0 "$p" 2>/dev/null; then
            echo "repmgrd $p did not stop within 10 s: SIGKILL" >&2
            kill -KILL "$p" 2>/dev/null || true
        fi
    done
}

# Stop every server of the cluster (immediate when $1 = immediate, else
# fast), ignoring ones that are down.
cl_stop_servers() {
    local mode=${1:-fast} d
    for d in "$CL_DIR"/*/data; do
        [[ -f $d/postmaster.pid ]] || continue
        cl_as_user pg_ctl -D "$d" -m "$mode" -w -t 60 stop >/dev/null 2>&1 || true
    done
}

# Stop daemons and servers and remove $CL_DIR.
cl_destroy() {
    [[ -d $CL_DIR ]] || return 0
    cl_stop_repmgrds
    cl_stop_servers "${1:-fast}"
    rm -rf "$CL_DIR"
}

# Milliseconds since the epoch; cl_since MS: seconds since then (x.yyy).
cl_now_ms() { echo $(($(date +%s%N) / 1000000)); }
cl_since() {
    local ms=$(($(cl_now_ms) - $1))
    printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}

# Run a shell function defined in the caller as the cluster user (in one
# process, so tight polling loops do not pay for runuser on every probe):
# cl_as_user_fn FUNCTION ARGS...
cl_as_user_fn() {
    local fn=$1
    shift
    cl_as_user bash -c "$(declare -f "$fn"); $fn \"\$@\"" "$fn" "$@"
}
