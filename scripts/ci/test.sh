#!/usr/bin/env bash
# The project's whole test run (what `make test` and .ci/run execute): install what the tests need
# (venv, Debian prometheus/docker.io/docker-compose, a private dockerd), lint, type-check, build the
# image, test.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/ci/setup.sh
# shellcheck disable=SC1091
source .run/env.sh
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/lint-imports --no-cache
# The deployable image (cached by layers; a clean build takes ~3 min); tests/integration/test_image.py runs it.
bash scripts/image/build.sh
# Tests that need Prometheus or Docker fail loudly (not skip) when FORESCALE_REQUIRE_SERVICES=1.
export FORESCALE_REQUIRE_SERVICES=1
.venv/bin/pytest "$@"
