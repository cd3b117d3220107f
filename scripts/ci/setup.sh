#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian machine; idempotent and quiet when done already.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .run
: > .run/env.sh

# .venv/.dev marks the test toolchain (`make demo` alone installs only the runtime: .venv/bin/forescale).
if [ ! -f .venv/.dev ] || [ pyproject.toml -nt .venv/.dev ]; then
  echo "setup: creating .venv and installing forescale[dev]"
  [ -x .venv/bin/pip ] || python3 -m venv .venv
  .venv/bin/pip install -q -e '.[dev]'
  touch .venv/bin/forescale .venv/.dev
fi

need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v shellcheck >/dev/null || need+=(shellcheck)          # lints the CI shell scripts
[ -x /bin/busybox ] || need+=(busybox-static)                    # rootfs of the locally built test image
command -v openssl >/dev/null || need+=(openssl)                # self-signed certs for the TLS tests
command -v debootstrap >/dev/null || need+=(debootstrap)        # the image's Debian base (make image)
command -v systemd-analyze >/dev/null || need+=(systemd)        # verifies contrib/systemd/forescale.service
# The queue-fed pool's tests run a private broker on loopback (tests/fixtures/rabbitmq_server.py); Debian's
# rabbitmq-server ships the rabbitmq_prometheus plugin and pulls in Erlang (epmd).
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need+=(rabbitmq-server)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing ${need[*]}; install them (apt-get install ${need[*]}) or run as root" >&2
    exit 1
  fi
  echo "setup: apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Packages must not start their system services (rabbitmq-server and epmd would listen on every address):
  # the tests start private copies on 127.0.0.1. policy-rc.d answering 101 is Debian's "do not start" switch.
  own_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

# A private dockerd for the Docker tests (no bridge, no iptables: containers use network_mode none).
if [ -f scripts/ci/start-dockerd.sh ]; then
  bash scripts/ci/start-dockerd.sh
fi
