# shellcheck shell=bash disable=SC2119,SC2120
# (SC2086 is disabled where lists of container ids are split on purpose)
# Functions behind scripts/lab.  Sourced, not run.

: "${ROOT:?ROOT must be set}"
export SEASHARD_LAB_PROJECT=${SEASHARD_LAB_PROJECT:-seashard-lab}
DEFAULT_BASE_IMAGE=debian:bookworm-slim
LOCAL_BASE_IMAGE=seashard/bookworm-base:latest
export LAB_IMAGE=${LAB_IMAGE:-seashard/lab:latest}
ARTIFACTS=${LAB_ARTIFACTS:-$ROOT/artifacts}
# Machine-wide state: the pidfile and log of a dockerd that scripts/lab started.
LAB_STATE_DIR=${LAB_STATE_DIR:-/run/seashard-lab}
DOCKERD_PIDFILE=$LAB_STATE_DIR/dockerd.pid
DOCKERD_LOG=$LAB_STATE_DIR/dockerd.log
COMPOSE_FILE=$ROOT/docker-compose.yml

say()  { echo "lab: $*" >&2; }
die()  { echo "lab: error: $*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------- addressing
# Every lab address derives from LAB_SUBNET (a /24) unless given one by one.
# docker-compose.yml carries the same defaults for a plain `docker compose up`.
lab_addresses() {
    export LAB_SUBNET=${LAB_SUBNET:-172.28.0.0/24}
    local net=${LAB_SUBNET%/*} len=${LAB_SUBNET#*/} p
    p=${net%.*}
    if [ "$len" != 24 ] && [ -z "${LAB_GATEWAY:-}" ]; then
        die "LAB_SUBNET=$LAB_SUBNET is not a /24: set LAB_GATEWAY, LAB_IP_RANGE, LAB_NETMASK and the *_IP variables too"
    fi
    export LAB_GATEWAY=${LAB_GATEWAY:-$p.1}
    export LAB_NETMASK=${LAB_NETMASK:-255.255.255.0}
    export LAB_IP_RANGE=${LAB_IP_RANGE:-$p.128/25}   # docker's dynamic addresses stay clear of ours
    export POSIX_SERVER_IP=${POSIX_SERVER_IP:-$p.10}
    export NATIVE_SERVER_IP=${NATIVE_SERVER_IP:-$p.20}   # the native container's kernel (admin)
    export NATIVE_STACK_IP=${NATIVE_STACK_IP:-$p.21}     # the native stack itself
    export CLIENT1_IP=${CLIENT1_IP:-$p.31}
    export CLIENT2_IP=${CLIENT2_IP:-$p.32}
    export PROBE_IP=${PROBE_IP:-$p.40}
    export LAB_BRIDGE=${LAB_BRIDGE:-sslab0}
}

# ---------------------------------------------------------------- engine
apt_install() {
    [ "${LAB_NO_INSTALL:-0}" != 1 ] || die "LAB_NO_INSTALL=1 and missing: $*"
    [ "$(id -u)" = 0 ] || die "need root to install $* (or install them yourself)"
    have apt-get || die "no apt-get: install $* with your system's package manager"
    if [ -z "${LAB_APT_UPDATED:-}" ]; then
        say "apt-get update"
        apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || die "apt-get update failed"
        LAB_APT_UPDATED=1
    fi
    say "installing from Debian packages: $*"
    # policy-rc.d: no package may start its service behind our back (we start dockerd below).
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; made_policy=1
    fi
    local rc=0 log
    log=$(mktemp /tmp/seashard-lab-apt.XXXXXX)
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "$@" > "$log" 2>&1 || rc=$?
    [ "$made_policy" = 0 ] || rm -f "$policy"
    if [ "$rc" != 0 ]; then tail -n 30 "$log" >&2; die "apt-get install $* failed (log: $log)"; fi
    rm -f "$log"
}

docker_ok() { timeout 20 docker info >/dev/null 2>&1; }

# COMPOSE: `docker compose` (v2) when it works, else `docker-compose` (v1.29 is fine).
detect_compose() {
    if docker compose version >/dev/null 2>&1; then
        COMPOSE=(docker compose)
    elif have docker-compose; then
        COMPOSE=(docker-compose)
    else
        return 1
    fi
}

start_dockerd() {
    mkdir -p "$LAB_STATE_DIR"
    say "starting dockerd (log: $DOCKERD_LOG)"
    # setsid: dockerd outlives this script and its terminal's Ctrl-C.
    setsid dockerd >>"$DOCKERD_LOG" 2>&1 < /dev/null &
    echo $! > "$DOCKERD_PIDFILE"
    for _ in $(seq 1 60); do
        if docker_ok; then
            say "dockerd is ready (pid $(cat "$DOCKERD_PIDFILE"); started by scripts/lab, recorded in $DOCKERD_PIDFILE)"
            return 0
        fi
        if ! kill -0 "$(cat "$DOCKERD_PIDFILE")" 2>/dev/null; then
            tail -n 20 "$DOCKERD_LOG" >&2
            rm -f "$DOCKERD_PIDFILE"
            die "dockerd exited; see $DOCKERD_LOG"
        fi
        sleep 0.5
    done
    die "dockerd did not answer within 30 s; see $DOCKERD_LOG"
}

lab_engine() {
    local pkgs=()
    # (the CLI may come from elsewhere, e.g. a static /usr/local/bin/docker; docker.io brings both)
    if ! have dockerd || ! have docker; then pkgs+=(docker.io); fi
    if ! have iptables; then pkgs+=(iptables); fi
    if [ ${#pkgs[@]} -gt 0 ] && ! docker_ok; then
        say "no Docker engine here: installing Debian's docker.io"
        apt_install "${pkgs[@]}"
    fi
    if ! docker_ok; then
        if [ -S /var/run/docker.sock ] && pgrep -x dockerd >/dev/null 2>&1; then
            die "dockerd is running but does not answer (permissions? try as root or in the docker group)"
        fi
        [ "$(id -u)" = 0 ] || die "no Docker engine answers and only root can start dockerd"
        start_dockerd
    fi
    if ! detect_compose; then
        say "neither 'docker compose' nor 'docker-compose' found"
        apt_install docker-compose
        detect_compose || die "docker-compose still missing after install"
    fi
    say "engine: docker $(docker version -f '{{.Server.Version}}' 2>/dev/null), compose: ${COMPOSE[*]} ($("${COMPOSE[@]}" version --short 2>/dev/null || echo '?'))"
}

stop_engine() {
    if [ -f "$DOCKERD_PIDFILE" ]; then
        local pid
        pid=$(cat "$DOCKERD_PIDFILE")
        if kill -0 "$pid" 2>/dev/null; then
            say "stopping dockerd (pid $pid, started by scripts/lab)"
            kill -TERM "$pid"
            for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
            kill -0 "$pid" 2>/dev/null && die "dockerd (pid $pid) did not stop within 30 s"
            # Its default bridge outlives it; the next start makes it again.
            ip link del docker0 2>/dev/null || true
        fi
        rm -f "$DOCKERD_PIDFILE"
    else
        say "dockerd was not started by scripts/lab ($DOCKERD_PIDFILE absent): leaving it running"
    fi
}

# ---------------------------------------------------------------- images
debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
    local m
    m=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list 2>/dev/null \
        | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n 1 | tr -d ' ')
    echo "${m:-http://deb.debian.org/debian}"
}

build_local_base() {
    have debootstrap || apt_install debootstrap
    local dir mirror start
    mirror=$(debian_mirror)
    dir=$(mktemp -d /var/tmp/seashard-bookworm.XXXXXX)
    start=$(date +%s)
    say "building $LOCAL_BASE_IMAGE with debootstrap (minbase bookworm from $mirror; about a minute)"
    if ! debootstrap --variant=minbase bookworm "$dir" "$mirror" > "$dir.log" 2>&1; then
        tail -n 20 "$dir.log" >&2
        rm -rf "$dir"
        die "debootstrap failed (full log: $dir.log)"
    fi
    # Trim it the way debian:*-slim is trimmed, and point apt at the same mirror.
    rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/* "$dir"/var/log/*.log "$dir"/tmp/*
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" > "$dir/etc/apt/sources.list"
    # The mirror here may serve a dated snapshot whose Release files have expired.
    printf 'Acquire::Check-Valid-Until "false";\n' > "$dir/etc/apt/apt.conf.d/99seashard-snapshot"
    printf 'APT::Install-Recommends "false";\n' > "$dir/etc/apt/apt.conf.d/99seashard-norecommends"
    tar -C "$dir" --numeric-owner -c . | docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'CMD ["bash"]' - "$LOCAL_BASE_IMAGE" >/dev/null
    rm -rf "$dir" "$dir.log"
    say "built $LOCAL_BASE_IMAGE in $(( $(date +%s) - start )) s"
}

# Sets BASE_IMAGE to an image that is present locally.
resolve_base_image() {
    local wanted=${BASE_IMAGE:-$DEFAULT_BASE_IMAGE}
    if docker image inspect "$wanted" >/dev/null 2>&1; then
        BASE_IMAGE=$wanted
    elif [ "$wanted" = "$DEFAULT_BASE_IMAGE" ] && docker image inspect "$LOCAL_BASE_IMAGE" >/dev/null 2>&1; then
        BASE_IMAGE=$LOCAL_BASE_IMAGE
        say "base image: $LOCAL_BASE_IMAGE (cached; stands in for $wanted)"
    else
        say "pulling $wanted (${LAB_PULL_TIMEOUT:-20} s at most)"
        if timeout "${LAB_PULL_TIMEOUT:-20}" docker pull -q "$wanted" >/dev/null 2>&1; then
            BASE_IMAGE=$wanted
        elif [ "$wanted" = "$DEFAULT_BASE_IMAGE" ]; then
            say "cannot pull $wanted (no registry reachable?)"
            build_local_base
            BASE_IMAGE=$LOCAL_BASE_IMAGE
        else
            die "cannot pull BASE_IMAGE=$wanted"
        fi
    fi
    export BASE_IMAGE
}

lab_build() {
    resolve_base_image
    local start
    start=$(date +%s)
    say "building $LAB_IMAGE from images/lab/Dockerfile (base $BASE_IMAGE)"
    local log
    log=$(mktemp /tmp/seashard-lab-build.XXXXXX)
    # Legacy builder output is chatty; show it only when the build fails.
    if ! DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0} docker build --build-arg "BASE_IMAGE=$BASE_IMAGE" \
            -t "$LAB_IMAGE" -f "$ROOT/images/lab/Dockerfile" "$ROOT" > "$log" 2>&1; then
        tail -n 40 "$log" >&2
        die "docker build failed (full log: $log)"
    fi
    rm -f "$log"
    # A rebuild leaves the previous lab image untagged: remove those, not anyone else's.
    docker image prune -f --filter "label=org.opencontainers.image.title=seashard lab" >/dev/null \
        || true
    say "built $LAB_IMAGE in $(( $(date +%s) - start )) s"
}

# ---------------------------------------------------------------- compose
compose() {
    "${COMPOSE[@]}" -p "$SEASHARD_LAB_PROJECT" -f "$COMPOSE_FILE" --project-directory "$ROOT" "$@"
}

project_containers() {  # container ids of the project, optionally of one service
    local filter=(--filter "label=com.docker.compose.project=$SEASHARD_LAB_PROJECT")
    [ -z "${1:-}" ] || filter+=(--filter "label=com.docker.compose.service=$1")
    docker ps -a -q "${filter[@]}"
}

service_container() {  # the running container of a service, or die
    local id
    id=$(docker ps -q --filter "label=com.docker.compose.project=$SEASHARD_LAB_PROJECT" \
        --filter "label=com.docker.compose.service=$1" | head -n 1)
    [ -n "$id" ] || die "no running container for service '$1' in lab '$SEASHARD_LAB_PROJECT' (scripts/lab status)"
    echo "$id"
}

# Wait until every service with a healthcheck is healthy.  A server whose
# program has exited will not get healthy: report it at once.
wait_healthy() {
    local timeout=${LAB_HEALTH_TIMEOUT:-120} start id name health waiting failed status
    start=$(date +%s)
    say "waiting for healthchecks (at most ${timeout} s)"
    while true; do
        waiting=(); failed=()
        for id in $(project_containers); do
            name=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}}' "$id")
            health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$id")
            status=$(docker inspect -f '{{.State.Status}}' "$id")
            if [ "$status" != running ]; then failed+=("$name ($status)"); continue; fi
            case "$health" in
                healthy|none) ;;
                *)
                    if ! docker exec "$id" labctl status >/dev/null 2>&1; then
                        failed+=("$name (program exited: $(docker exec "$id" labctl status 2>&1 | head -n 1))")
                    else
                        waiting+=("$name")
                    fi
                    ;;
            esac
        done
        [ ${#waiting[@]} -gt 0 ] || break
        if [ $(( $(date +%s) - start )) -ge "$timeout" ]; then
            failed+=("${waiting[@]/%/ (not healthy after ${timeout} s)}")
            break
        fi
        sleep 1
    done
    if [ ${#failed[@]} -gt 0 ]; then
        local f
        for f in "${failed[@]}"; do say "NOT HEALTHY: $f"; done
        return 1
    fi
    say "all services healthy after $(( $(date +%s) - start )) s"
}

lab_up() {
    local wait=1 build=1
    while [ $# -gt 0 ]; do
        case "$1" in
            --no-wait)  wait=0 ;;
            --no-build) build=0 ;;
            *) die "up: unknown option '$1' (--no-wait, --no-build)" ;;
        esac
        shift
    done
    lab_addresses
    lab_engine
    if [ "$build" = 1 ] || ! docker image inspect "$LAB_IMAGE" >/dev/null 2>&1; then lab_build; fi
    export BASE_IMAGE=${BASE_IMAGE:-$DEFAULT_BASE_IMAGE}
    say "starting lab '$SEASHARD_LAB_PROJECT' on $LAB_SUBNET"
    compose up -d --no-build --remove-orphans >&2 || die "compose up failed"
    local rc=0
    if [ "$wait" = 1 ]; then wait_healthy || rc=$?; fi
    lab_status
    if [ "$rc" != 0 ]; then
        say "some services are not healthy; their logs: scripts/lab logs SERVICE"
        local id name
        for id in $(project_containers); do
            name=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}}' "$id")
            case "$name" in *server)
                echo "---- last lines of $name ----" >&2
                docker logs --tail 8 "$id" 2>&1 | sed 's/^/  /' >&2 ;;
            esac
        done
    fi
    return "$rc"
}

lab_down() {
    local stop_engine=0
    while [ $# -gt 0 ]; do
        case "$1" in
            --stop-engine) stop_engine=1 ;;
            *) die "down: unknown option '$1' (--stop-engine)" ;;
        esac
        shift
    done
    lab_addresses
    if docker_ok; then
        detect_compose || die "no compose (scripts/lab engine installs one)"
        say "removing lab '$SEASHARD_LAB_PROJECT'"
        local helpers
        helpers=$(docker ps -a -q --filter "label=seashard.lab.project=$SEASHARD_LAB_PROJECT")
        # shellcheck disable=SC2086
        [ -z "$helpers" ] || docker rm -f $helpers >/dev/null
        compose down -v --remove-orphans --timeout 10 >&2
        local left
        left=$(project_containers)
        # shellcheck disable=SC2086
        [ -z "$left" ] || { docker rm -f $left >/dev/null; say "removed leftover containers"; }
        left=$(docker network ls -q --filter "label=com.docker.compose.project=$SEASHARD_LAB_PROJECT")
        # shellcheck disable=SC2086
        [ -z "$left" ] || { docker network rm $left >/dev/null; say "removed leftover networks"; }
    else
        say "no Docker engine answers: nothing to remove"
    fi
    [ "$stop_engine" = 0 ] || stop_engine
}

lab_status() {
    lab_addresses
    docker_ok || die "no Docker engine answers (scripts/lab engine)"
    local ids
    ids=$(project_containers)
    if [ -z "$ids" ]; then say "lab '$SEASHARD_LAB_PROJECT' is not running (scripts/lab up)"; return 0; fi
    local net
    net=$(docker network ls -q --filter "label=com.docker.compose.project=$SEASHARD_LAB_PROJECT" | head -n 1)
    echo
    if [ -n "$net" ]; then
        docker network inspect -f "lab '$SEASHARD_LAB_PROJECT': network {{.Name}} {{range .IPAM.Config}}{{.Subnet}} gateway {{.Gateway}}{{end}}, host bridge {{index .Options \"com.docker.network.bridge.name\"}}" "$net"
    fi
    printf '%-14s %-30s %-18s %-13s %s\n' SERVICE CONTAINER STATE LAB-IP ENDPOINTS
    local id name cname state health ip ep
    for id in $ids; do
        name=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}}' "$id")
        cname=$(docker inspect -f '{{.Name}}' "$id"); cname=${cname#/}
        state=$(docker inspect -f '{{.State.Status}}' "$id")
        health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id")
        [ -z "$health" ] || state="$state/$health"
        ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$id" | awk '{print $1}')
        case "$name" in
            posix-server)
                ep="admin http://$ip:9100/metrics  http://$ip:9100/connections; echo $ip:1234 canned $ip:1235 accept-logger $ip:1236" ;;
            native-server)
                ep="admin http://$ip:9100/metrics  http://$ip:9100/connections (kernel on br0); native stack $NATIVE_STACK_IP: echo :1234 canned :1235 accept-logger :1236" ;;
            client-*) ep="seashard load against $POSIX_SERVER_IP (posix) and $NATIVE_STACK_IP (native)" ;;
            probe)    ep="scapy, tcpdump, ping, nc" ;;
            *)        ep="" ;;
        esac
        printf '%-14s %-30s %-18s %-13s %s\n' "$name" "$cname" "$state" "${ip:--}" "$ep"
    done | sort
    cat <<EOT

Watch it:
  scripts/lab logs posix-server -f          program output (also: client-1, native-server, ...)
  scripts/lab capture native-server 30      30 s of eth0 traffic -> artifacts/captures/*.pcap
  scripts/lab capture native-server 30 -i tap0 'tcp port 1234'    what the native stack sees
  scripts/lab capture lab 30                the whole lab bridge ($LAB_BRIDGE)
  docker exec -it $(container_name probe) bash    scapy/tcpdump/ping from inside the lab
  docker exec $(container_name posix-server) labctl restart [serve ARGS]
                                            restart seashard in place (its TIME_WAIT sockets stay)
  scripts/lab scenario list                 replay a situation (TIME_WAIT restart, shard-0-only
                                            listener, connection storm, lossy link) with a pcap
EOT
}

container_name() {
    local id
    id=$(docker ps -q --filter "label=com.docker.compose.project=$SEASHARD_LAB_PROJECT" \
        --filter "label=com.docker.compose.service=$1" | head -n 1)
    if [ -n "$id" ]; then docker inspect -f '{{.Name}}' "$id" | tr -d /; else echo "<$1>"; fi
}

lab_logs() {
    lab_addresses
    docker_ok || die "no Docker engine answers (scripts/lab engine)"
    detect_compose || die "no compose (scripts/lab engine installs one)"
    if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
        local svc=$1; shift
        compose logs "$@" "$svc"
    else
        compose logs "$@"
    fi
}

# capture SERVICE|lab [SECONDS] [-i IFACE] [FILTER...]
# tcpdump runs in a throw-away container that joins SERVICE's network
# namespace (docker run --network container:ID), so it needs nothing from the
# target (works even while the target's program is down) nor tcpdump on the host.
lab_capture() {
    [ $# -ge 1 ] || die "usage: scripts/lab capture SERVICE|lab [SECONDS] [-i IFACE] [FILTER...]"
    lab_addresses
    docker_ok || die "no Docker engine answers (scripts/lab engine)"
    local svc=$1 secs=10 iface=eth0 netmode target
    shift
    if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then secs=$1; shift; fi
    if [ "${1:-}" = -i ]; then iface=${2:?-i needs an interface}; shift 2; fi
    if [ "$svc" = lab ]; then
        local net
        net=$(docker network ls -q --filter "label=com.docker.compose.project=$SEASHARD_LAB_PROJECT" | head -n 1)
        [ -n "$net" ] || die "lab '$SEASHARD_LAB_PROJECT' has no network (scripts/lab up)"
        iface=$(docker network inspect -f '{{index .Options "com.docker.network.bridge.name"}}' "$net")
        [ -n "$iface" ] || iface=br-$(docker network inspect -f '{{.Id}}' "$net" | cut -c1-12)
        netmode=host
    else
        target=$(service_container "$svc")
        netmode=container:$target
    fi
    mkdir -p "$ARTIFACTS/captures"
    local out
    out=$ARTIFACTS/captures/$SEASHARD_LAB_PROJECT-$svc-$iface-$(date +%Y%m%d-%H%M%S).pcap
    local dur="timeout -s INT $secs"
    [ "$secs" != 0 ] || dur=""
    say "capturing on $svc:$iface for ${secs} s${*:+ (filter: $*)} -> $out   (Ctrl-C stops)"
    # -U: every packet is flushed, so the file is a valid pcap even if cut short.
    # shellcheck disable=SC2086
    docker run --rm -i --network "$netmode" --cap-add NET_RAW --cap-add NET_ADMIN \
        --label "seashard.lab.project=$SEASHARD_LAB_PROJECT" --entrypoint "" "$LAB_IMAGE" \
        $dur tcpdump -i "$iface" --immediate-mode -U -s 0 -Z root -w - "$@" > "$out" || true
    local bytes
    bytes=$(stat -c %s "$out")
    [ "$bytes" -gt 0 ] || die "tcpdump wrote nothing (interface '$iface' in $svc?)"
    [ "$bytes" -gt 24 ] || say "no packets seen on $svc:$iface (the file holds only the pcap header)"
    say "wrote $out ($bytes bytes); read it with: tshark -r $out   (or Wireshark)"
    echo "$out"
}

# The python that runs lab_tests: LAB_PYTHON, else the project's .venv, else python3.
lab_python() {
    local py
    for py in "${LAB_PYTHON:-}" "$ROOT/.venv/bin/python" python3; do
        [ -n "$py" ] || continue
        if have "$py" && "$py" -c 'import docker, testinfra, pytest, scapy' 2>/dev/null; then
            echo "$py"; return 0
        fi
    done
    have python3 || die "python3 is needed on the host for lab_tests"
    say "installing the lab test dependencies from PyPI: pytest docker pytest-testinfra scapy"
    python3 -m pip install -q pytest docker pytest-testinfra scapy >&2 || die "pip install failed"
    echo python3
}

# test [PYTEST ARGS]: every lab suite against a throw-away lab of its own
# (project seashard-lab-test-<hex> on its own /24), which is always removed:
# by the session fixture, and here again if pytest itself was killed.
lab_test() {
    local py start rc=0 project
    py=$(lab_python)
    lab_engine
    project=seashard-lab-test-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
    start=$(date +%s)
    say "running lab_tests with $py (test lab $project)"
    # shellcheck disable=SC2064  # expand now: the project of this run
    trap "SEASHARD_LAB_PROJECT=$project lab_test_cleanup" EXIT
    (cd "$ROOT" && SEASHARD_LAB_TEST_PROJECT=$project "$py" -m pytest lab_tests "$@") || rc=$?
    local took=$(( $(date +%s) - start ))
    say "lab_tests finished with exit status $rc in $((took / 60)) min $((took % 60)) s"
    return "$rc"
}

lab_test_cleanup() {
    local left
    left=$(project_containers)$(docker ps -a -q --filter "label=seashard.lab.project=$SEASHARD_LAB_PROJECT")
    if [ -n "$left" ] || [ -n "$(docker network ls -q --filter "label=com.docker.compose.project=$SEASHARD_LAB_PROJECT")" ]; then
        say "test lab $SEASHARD_LAB_PROJECT is still there: removing it"
        lab_down >/dev/null 2>&1 || true
    fi
}

# scenario list|NAME: see scripts/lablib/scenarios.py (standard library only).
lab_scenario() {
    [ $# -ge 1 ] || die "usage: scripts/lab scenario list|NAME"
    have python3 || die "python3 is needed on the host for scenarios"
    if [ "$1" != list ] && [ "$1" != ls ]; then
        lab_addresses
        docker_ok || die "no Docker engine answers (scripts/lab up)"
        [ -n "$(project_containers)" ] || die "lab '$SEASHARD_LAB_PROJECT' is not running: scripts/lab up first"
    fi
    SEASHARD_LAB_PROJECT=$SEASHARD_LAB_PROJECT LAB_ARTIFACTS=$ARTIFACTS \
        python3 "$ROOT/scripts/lablib/scenarios.py" "$@"
}
