#!/usr/bin/env bash
# `make image`: forescale's Docker image, built without a registry and without network in the build.
#   1. the base: Debian 12 from Debian's packages (scripts/image/base.sh, cached by recipe hash);
#   2. a wheelhouse on the host: the pinned wheels of scripts/image/requirements.lock (sha256-checked)
#      plus forescale's own wheel;
#   3. `docker build` with the legacy builder (no BuildKit/buildx here); the Dockerfile only COPYs.
# Tags forescale:<version> and forescale:latest; writes the image ID to .run/image-id (the image tests use it).
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS
py=.venv/bin/python
[ -x "$py" ] || { echo "image: run bash scripts/ci/setup.sh first (it creates .venv)" >&2; exit 1; }
mkdir -p .run build/image/wheelhouse
version="$("$py" -c 'import autoscaler; print(autoscaler.__version__)')"
revision="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"

# 1. Base image (one debootstrap at a time on this machine; a second caller then finds the image).
exec 9> /tmp/forescale-image-base.lock
flock 9
base="$(bash scripts/image/base.sh)"
flock -u 9

# 2. Wheelhouse: exact wheels (--require-hashes is implied by the lock's hashes), downloaded unless every
#    locked hash is already there.
# The host's pip settings (local wheel dirs, constraints) are ignored: only the lock decides what goes in.
t=$SECONDS
# (Wheels no longer in the lock are removed: the COPY layer is exactly the locked set.)
if ! "$py" - scripts/image/requirements.lock build/image/wheelhouse <<'PY'
import hashlib, pathlib, re, sys
want = set(re.findall(r"sha256:([0-9a-f]{64})", pathlib.Path(sys.argv[1]).read_text()))
have = set()
for wheel in pathlib.Path(sys.argv[2]).glob("*.whl"):
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest in want:
        have.add(digest)
    else:
        wheel.unlink()
sys.exit(0 if want <= have else 1)
PY
then
  env -u PIP_FIND_LINKS -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null \
    "$py" -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
    --python-version 3.11 --implementation cp --abi cp311 \
    -r scripts/image/requirements.lock -d build/image/wheelhouse
fi
rm -rf build/image/project
env -u PIP_FIND_LINKS -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null \
  "$py" -m pip wheel --quiet --no-deps -w build/image/project .
echo "image: wheelhouse ready in $((SECONDS - t))s ($(du -sh build/image/wheelhouse | cut -f1))"

# 3. The image. DOCKER_BUILDKIT=0: the legacy builder, whatever the environment says.
t=$SECONDS
DOCKER_BUILDKIT=0 docker build --quiet --force-rm \
  --build-arg "BASE=$base" --build-arg "VERSION=$version" --build-arg "REVISION=$revision" \
  -t "forescale:$version" -t forescale:latest . > .run/image-id.tmp
mv .run/image-id.tmp .run/image-id
size="$(docker image inspect --format '{{.Size}}' "$(cat .run/image-id)")"
echo "image: forescale:$version ($(cut -c1-19 .run/image-id), $((size / 1000000)) MB, base $base)" \
  "built in $((SECONDS - t))s; total $((SECONDS - start))s"
