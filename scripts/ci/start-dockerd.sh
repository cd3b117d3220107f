#!/usr/bin/env bash
# Start a private dockerd for the Docker tests, unless a Docker daemon already answers; idempotent.
#
# No bridge, no iptables/NAT: the test containers use `network_mode: none`, so this daemon never
# touches the host's network. Writes `export DOCKER_HOST=...` to .run/env.sh (setup.sh truncates that
# file, test.sh sources it). Overridable: FORESCALE_DOCKERD_SOCK, FORESCALE_DOCKERD_ROOT, FORESCALE_DOCKERD_WAIT.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .run

sock="${FORESCALE_DOCKERD_SOCK:-/run/forescale-dockerd.sock}"
root="${FORESCALE_DOCKERD_ROOT:-/var/lib/forescale-dockerd}"
exec_root="/run/forescale-dockerd"
pidfile="/run/forescale-dockerd.pid"
log=".run/dockerd.log"
wait_s="${FORESCALE_DOCKERD_WAIT:-60}"

answers() { DOCKER_HOST="$1" timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }
export_host() {
  echo "export DOCKER_HOST=$1" >> .run/env.sh
  echo "start-dockerd: using Docker at $1"
}

# 1. A daemon the caller already points at (DOCKER_HOST), or the system default socket.
for candidate in "${DOCKER_HOST:-}" "unix:///var/run/docker.sock" "unix://$sock"; do
  if [ -n "$candidate" ] && answers "$candidate"; then
    export_host "$candidate"
    exit 0
  fi
done

if ! command -v dockerd >/dev/null; then
  echo "start-dockerd: dockerd is not installed (apt-get install docker.io)" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "start-dockerd: no Docker daemon answers and starting one needs root; Docker tests will not run" >&2
  exit 0
fi

# 2. A stale pidfile of ours whose daemon no longer answers: stop that one process (by its PID) first.
if [ -s "$pidfile" ]; then
  old="$(cat "$pidfile")"
  if kill -0 "$old" 2>/dev/null && [ "$(cat "/proc/$old/comm" 2>/dev/null)" = "dockerd" ]; then
    echo "start-dockerd: dockerd $old does not answer; stopping it"
    kill "$old" || true
    for _ in $(seq 1 20); do kill -0 "$old" 2>/dev/null || break; sleep 0.5; done
  fi
  rm -f "$pidfile"
fi

mkdir -p "$root" "$exec_root"
echo "start-dockerd: starting dockerd on unix://$sock (data-root $root, log $log)"
# setsid: the daemon outlives this script and the CI step that ran it.
setsid dockerd \
  --host "unix://$sock" \
  --data-root "$root" \
  --exec-root "$exec_root" \
  --pidfile "$pidfile" \
  --bridge=none \
  --iptables=false \
  --ip6tables=false \
  --ip-masq=false \
  --userland-proxy=false \
  > "$log" 2>&1 < /dev/null &

# Bounded wait for the socket to answer.
deadline=$((SECONDS + wait_s))
until answers "unix://$sock"; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "start-dockerd: dockerd did not answer within ${wait_s}s; last log lines:" >&2
    tail -n 20 "$log" >&2 || true
    exit 1
  fi
  sleep 0.5
done
export_host "unix://$sock"
