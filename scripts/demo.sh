#!/usr/bin/env bash
# make demo / make demo-down: a real local cluster managed by repmgr.
#
#   up    build repmgr, start a primary (node1) and a standby (node2) under
#         $DEMO_DIR as an unprivileged user, register both, show the cluster
#   down  stop both servers and remove $DEMO_DIR
#
# As root the servers and repmgr run as $DEMO_USER (default postgres), since
# PostgreSQL and repmgr refuse to run as root. Traffic stays on 127.0.0.1.
set -euo pipefail

DEMO_DIR=${DEMO_DIR:-/tmp/repmgr-demo}
DEMO_USER=${DEMO_USER:-postgres}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

pg_bindir() {
    if command -v pg_config >/dev/null 2>&1 && [[ -x "$(pg_config --bindir)/initdb" ]]; then
        pg_config --bindir
    else
        ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
    fi
}
PGBIN=$(pg_bindir)
[[ -x "$PGBIN/initdb" ]] || { echo "demo: PostgreSQL server binaries not found (install postgresql-15)" >&2; exit 1; }

# Run a command as the demo user (directly when not root).
as_user() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u "$DEMO_USER" -- env HOME="$DEMO_DIR" PATH="$DEMO_DIR/bin:$PGBIN:$PATH" "$@"
    else
        env PATH="$DEMO_DIR/bin:$PGBIN:$PATH" "$@"
    fi
}

# Files written by this script belong to the demo user.
own() { if [[ $(id -u) -eq 0 ]]; then chown -R "$DEMO_USER:" "$@"; fi; }

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

down() {
    if [[ ! -d $DEMO_DIR ]]; then
        echo "demo: nothing to tear down ($DEMO_DIR does not exist)"
        return
    fi
    for n in node2 node1; do
        if [[ -f $DEMO_DIR/$n/data/postmaster.pid ]]; then
            as_user "$PGBIN/pg_ctl" -D "$DEMO_DIR/$n/data" -m fast -w -t 60 stop || true
        fi
    done
    rm -rf "$DEMO_DIR"
    echo "demo: stopped and removed $DEMO_DIR"
}

write_conf() { # id name port
    local id=$1 name=$2 port=$3
    cat >"$DEMO_DIR/$name/repmgr.conf" <<EOF
node_id=$id
node_name='$name'
conninfo='host=127.0.0.1 port=$port user=$DEMO_USER dbname=postgres connect_timeout=2'
data_directory='$DEMO_DIR/$name/data'
log_level='INFO'
EOF
}

node_conf() { # name port
    cat >>"$DEMO_DIR/$1/data/postgresql.conf" <<EOF
# demo settings
port = $2
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DEMO_DIR/$1'
cluster_name = '$1'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
wal_keep_size = '128MB'
wal_log_hints = on
EOF
}

up() {
    if [[ -d $DEMO_DIR ]]; then
        echo "demo: $DEMO_DIR exists; run 'make demo-down' first" >&2
        exit 1
    fi
    id "$DEMO_USER" >/dev/null 2>&1 || { echo "demo: user $DEMO_USER does not exist" >&2; exit 1; }

    say "building repmgr (release)"
    (cd "$ROOT" && cargo build --release --quiet)

    mkdir -p "$DEMO_DIR/bin" "$DEMO_DIR/node1" "$DEMO_DIR/node2"
    install -m 0755 "$ROOT/target/release/repmgr" "$DEMO_DIR/bin/repmgr"
    ln -sf repmgr "$DEMO_DIR/bin/repmgrd"
    own "$DEMO_DIR"
    chmod 0700 "$DEMO_DIR"

    local p1 p2
    p1=$(free_port)
    p2=$(free_port)

    say "node1: initdb and start the primary on 127.0.0.1:$p1"
    as_user "$PGBIN/initdb" -D "$DEMO_DIR/node1/data" -A trust -U "$DEMO_USER" -N >/dev/null
    node_conf node1 "$p1"
    as_user "$PGBIN/pg_ctl" -D "$DEMO_DIR/node1/data" -l "$DEMO_DIR/node1/server.log" -w -t 60 start >/dev/null
    write_conf 1 node1 "$p1"
    own "$DEMO_DIR/node1"

    say "node1: repmgr primary register"
    as_user repmgr -f "$DEMO_DIR/node1/repmgr.conf" primary register

    say "node2: pg_basebackup from node1 and start the standby on 127.0.0.1:$p2"
    as_user "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$p1" -U "$DEMO_USER" -D "$DEMO_DIR/node2/data" -R -X stream -c fast
    node_conf node2 "$p2"
    as_user "$PGBIN/pg_ctl" -D "$DEMO_DIR/node2/data" -l "$DEMO_DIR/node2/server.log" -w -t 60 start >/dev/null
    write_conf 2 node2 "$p2"
    own "$DEMO_DIR/node2"

    say "node2: repmgr standby register --wait-sync=30"
    as_user repmgr -f "$DEMO_DIR/node2/repmgr.conf" standby register --wait-sync=30

    say "repmgr cluster show"
    # The standby's walreceiver may need a moment to report as attached.
    for _ in $(seq 1 50); do
        as_user repmgr -f "$DEMO_DIR/node1/repmgr.conf" cluster show --csv >/dev/null 2>&1 && break
        sleep 0.1
    done
    as_user repmgr -f "$DEMO_DIR/node1/repmgr.conf" cluster show || true

    say "repmgr cluster event"
    as_user repmgr -f "$DEMO_DIR/node1/repmgr.conf" cluster event

    cat <<EOF

The cluster is running under $DEMO_DIR (node1 primary on port $p1, node2 standby on port $p2).
Try, as $DEMO_USER:
    PATH=$DEMO_DIR/bin:\$PATH repmgr -f $DEMO_DIR/node2/repmgr.conf cluster show --compact
Tear it down with:
    make demo-down
EOF
}

case ${1:-up} in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down" >&2; exit 1 ;;
esac
