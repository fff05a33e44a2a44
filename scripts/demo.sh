#!/usr/bin/env bash
# make demo / make demo-failover / make demo-down: the seed README's
# three-node example, managed by repmgr and repmgrd, under $DEMO_DIR.
#
#   up        build repmgr; node1 primary; node2 cloned with `repmgr standby
#             clone` (pg_basebackup), node3 with `--rsync-only`; all
#             registered; repmgrd (failover=automatic) on every node; shows
#             `repmgr cluster show` and `repmgr service status`
#   failover  kill -9 the primary's postmaster, wait until a standby has
#             taken over and the other streams from it, show the repmgrd log
#             lines of the failover and `repmgr cluster show`
#   down      stop the repmgrd daemons and the servers, remove $DEMO_DIR
#
# As root everything runs as $DEMO_USER (default postgres). Traffic stays on
# 127.0.0.1 and unix sockets in $DEMO_DIR.
set -euo pipefail

DEMO_DIR=${DEMO_DIR:-/tmp/repmgr-demo}
CL_DIR=$DEMO_DIR
CL_USER=${DEMO_USER:-postgres}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/cluster-lib.sh
. "$ROOT/scripts/cluster-lib.sh"

NODES=(node1 node2 node3)
# How long demo-failover waits for the new primary and its standby.
FAILOVER_WAIT=30

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Show a command as the user would type it, then run it.
show() {
    local a line="\$"
    for a in "$@"; do
        if [[ $a =~ [[:space:]\'\$\*] ]]; then line+=" \"$a\""; else line+=" $a"; fi
    done
    printf '%s\n' "$line"
    cl_as_user "$@"
}

demo_conf() { # id name port
    cl_repmgr_conf "$1" "$2" "$3" \
        "log_level='INFO'" \
        "failover='automatic'" \
        "reconnect_attempts=3" \
        "reconnect_interval=1" \
        "monitor_interval_secs=1"
}

# Does `service status` show a running repmgrd on every node?
all_repmgrds_running() {
    [[ $(cl_repmgr node1 service status --csv 2>/dev/null | awk -F, '$5 == 1' | wc -l) -eq ${#NODES[@]} ]]
}

# The node that answers as a primary, if any.
current_primary() {
    local n
    for n in "${NODES[@]}"; do
        if cl_is_primary "$n"; then
            echo "$n"
            return 0
        fi
    done
    return 1
}

up() {
    if [[ -d $DEMO_DIR ]]; then
        cl_die "$DEMO_DIR exists; run 'make demo-down' first"
    fi
    cl_check_tools

    say "building repmgr (release)"
    (cd "$ROOT" && cargo build --release --quiet)
    cl_setup_dir "$ROOT"

    local id=1 n
    for n in "${NODES[@]}"; do
        demo_conf "$id" "$n" "$(cl_free_port)"
        id=$((id + 1))
    done

    say "node1: initdb, start the primary on 127.0.0.1:$(sed -n 's/.*port=\([0-9]*\) .*/\1/p' "$DEMO_DIR/node1/repmgr.conf")"
    cl_init_primary node1
    show repmgr -f "$DEMO_DIR/node1/repmgr.conf" primary register
    cl_psql node1 -c "CREATE TABLE demo (id serial PRIMARY KEY, written_on text, at timestamptz DEFAULT now())"
    cl_psql node1 -c "INSERT INTO demo (written_on) SELECT 'node1' FROM generate_series(1, 3)"

    say "node2: clone node1 with pg_basebackup, start, register"
    show repmgr -f "$DEMO_DIR/node2/repmgr.conf" -h 127.0.0.1 -p "$(cl_port node1)" \
        -U postgres -d postgres standby clone -c
    cl_local_conf node2 "$(sed -n 's/.*port=\([0-9]*\) .*/\1/p' "$DEMO_DIR/node2/repmgr.conf")"
    cl_start node2
    show repmgr -f "$DEMO_DIR/node2/repmgr.conf" standby register --wait-sync=30

    say "node3: clone node1 with rsync (--rsync-only), start, register"
    show repmgr -f "$DEMO_DIR/node3/repmgr.conf" -h 127.0.0.1 -p "$(cl_port node1)" \
        -U postgres -d postgres standby clone -c --rsync-only
    cl_local_conf node3 "$(sed -n 's/.*port=\([0-9]*\) .*/\1/p' "$DEMO_DIR/node3/repmgr.conf")"
    cl_start node3
    show repmgr -f "$DEMO_DIR/node3/repmgr.conf" standby register --wait-sync=30

    cl_wait 30 "node2 and node3 to stream from node1" \
        eval 'cl_streams_from node1 node2 && cl_streams_from node1 node3'

    say "starting repmgrd on every node (failover=automatic, 3 reconnect attempts 1 s apart)"
    for n in "${NODES[@]}"; do
        cl_start_repmgrd "$n"
        echo "repmgrd for $n: pid $(cl_repmgrd_pid "$n"), log $DEMO_DIR/$n/repmgrd.log"
    done

    say "repmgr cluster show"
    show repmgr -f "$DEMO_DIR/node1/repmgr.conf" cluster show || true

    say "repmgr service status"
    # Each daemon records itself within a monitoring interval.
    cl_wait 10 "every repmgrd to report running" \
        all_repmgrds_running || true
    show repmgr -f "$DEMO_DIR/node1/repmgr.conf" service status || true

    cat <<EOF

The cluster runs under $DEMO_DIR: node1 is the primary, node2 and node3 stream
from it, and a repmgrd watches each node. Rows written so far on node1:
$(cl_psql node1 -c "SELECT count(*) FROM demo") (table demo).

Next:
    make demo-failover   kill -9 the primary; watch repmgrd promote a standby
                         and repoint the other one (about 2 s)
    make demo-down       stop everything and remove $DEMO_DIR

Look around yourself (as $CL_USER):
    PATH=$CL_BIN:\$PATH repmgr -f $DEMO_DIR/node2/repmgr.conf cluster show
    tail -f $DEMO_DIR/node2/repmgrd.log
EOF
}

failover() {
    [[ -d $DEMO_DIR ]] || cl_die "no demo cluster under $DEMO_DIR: run 'make demo' first"
    local old new="" survivor="" n pid
    old=$(current_primary) || cl_die "no node answers as a primary"
    local standbys=()
    for n in "${NODES[@]}"; do
        [[ $n == "$old" ]] && continue
        if cl_psql "$n" -c 'SELECT 1' >/dev/null 2>&1; then standbys+=("$n"); fi
    done
    ((${#standbys[@]} > 0)) || cl_die "no standby is running: nothing could take over"
    cl_psql "$old" -c "INSERT INTO demo (written_on) VALUES ('$old')"
    # The repmgrd log lines of this failover are the ones after this mark.
    declare -A mark
    for n in "${NODES[@]}"; do
        mark[$n]=$(wc -l <"$DEMO_DIR/$n/repmgrd.log" 2>/dev/null || echo 0)
    done

    pid=$(cl_postmaster_pid "$old")
    say "kill -9 $pid: the postmaster of the primary, $old"
    kill -9 "$pid"
    local start
    start=$(cl_now_ms)

    echo "waiting (at most ${FAILOVER_WAIT}s) for a standby to be promoted..."
    local end=$((SECONDS + FAILOVER_WAIT))
    while ((SECONDS < end)); do
        for n in "${standbys[@]}"; do
            if cl_is_primary "$n"; then new=$n; fi
        done
        [[ -n $new ]] && break
        sleep 0.1
    done
    [[ -n $new ]] || cl_die "no standby was promoted within ${FAILOVER_WAIT}s; see $DEMO_DIR/*/repmgrd.log"
    printf '%s is the primary now, %s s after the kill\n' "$new" "$(cl_since "$start")"
    for n in "${standbys[@]}"; do
        [[ $n == "$new" ]] || survivor=$n
    done
    if [[ -n $survivor ]]; then
        while ((SECONDS < end)) && ! cl_streams_from "$new" "$survivor"; do sleep 0.1; done
        cl_streams_from "$new" "$survivor" ||
            cl_die "$survivor does not stream from $new after ${FAILOVER_WAIT}s; see $DEMO_DIR/$survivor/repmgrd.log"
        printf '%s streams from %s, %s s after the kill\n' "$survivor" "$new" "$(cl_since "$start")"
    fi

    say "what the repmgrd daemons logged"
    for n in "${NODES[@]}"; do
        echo "--- $n ($DEMO_DIR/$n/repmgrd.log)"
        tail -n +"$((mark[$n] + 1))" "$DEMO_DIR/$n/repmgrd.log" |
            grep -Ei 'unable to connect|unreachable|reconnect|election|elected|candidate|promot|follow|primary|voting' || true
    done

    cl_psql "$new" -c "INSERT INTO demo (written_on) VALUES ('$new')"
    if [[ -n $survivor ]]; then
        say "a row written on $new is read on $survivor"
        local want
        want=$(cl_psql "$new" -c "SELECT count(*) FROM demo")
        cl_wait 10 "the new row on $survivor" \
            eval '[[ $(cl_psql "$survivor" -c "SELECT count(*) FROM demo") == "$want" ]]' || true
        show psql -X -h "$DEMO_DIR/$survivor" -p "$(cl_port "$survivor")" -U postgres -d postgres \
            -c "SELECT written_on, count(*) FROM demo GROUP BY 1 ORDER BY min(id)"
    fi

    say "repmgr cluster show"
    show repmgr -f "$DEMO_DIR/$new/repmgr.conf" cluster show || true
    cat <<EOF

$old is marked failed: it is down. 'make demo-down' stops everything and
removes $DEMO_DIR.
EOF
}

down() {
    if [[ ! -d $DEMO_DIR ]]; then
        echo "demo: nothing to tear down ($DEMO_DIR does not exist)"
        return
    fi
    echo "stopping the repmgrd daemons..."
    cl_stop_repmgrds
    echo "stopping the servers..."
    cl_stop_servers fast
    rm -rf "$DEMO_DIR"
    echo "demo: stopped and removed $DEMO_DIR"
}

case ${1:-up} in
    up) up ;;
    failover) failover ;;
    down) down ;;
    *)
        echo "usage: $0 up|failover|down" >&2
        exit 1
        ;;
esac
