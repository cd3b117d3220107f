# forescale's image: Debian 12 (bookworm) with Debian's CPython 3.11, a venv of pinned wheels, non-root.
# Build it with `make image` (scripts/image/build.sh): that makes the base from Debian's packages and
# the wheelhouse on the host first, so this build needs no registry and no network (legacy builder syntax).
#
#   docker run --rm forescale:0.1.0 --version
#   docker run --rm -v "$PWD:/cfg:ro" forescale:0.1.0 config check --config /cfg/forescale.yaml

ARG BASE=forescale-base:bookworm

# The dependencies, from the lock (sha256-checked again here), installed by pip run from its wheel:
# the venv itself gets no pip. matplotlib's test suite (never imported at run time; numpy's is, so it
# stays) is left out; the image test runs a demo and a backtest with --plot on what remains. (No
# scipy or scikit-learn: the predictor's least squares are numpy's, predictor/ols.py.)
FROM ${BASE} AS deps
COPY scripts/image/requirements.lock /tmp/requirements.lock
COPY build/image/wheelhouse /tmp/wheelhouse
RUN set -e; \
    python3 -m venv --without-pip /opt/forescale; \
    grep -v '^pip==' /tmp/requirements.lock > /tmp/deps.lock; \
    /opt/forescale/bin/python "$(echo /tmp/wheelhouse/pip-*.whl)/pip" install --no-index --find-links /tmp/wheelhouse \
        --no-cache-dir --disable-pip-version-check --require-hashes --no-deps -r /tmp/deps.lock; \
    cd /opt/forescale/lib/python3.11/site-packages; \
    find matplotlib -depth -type d -name tests -prune -exec rm -rf {} +

# forescale itself, checked against the pinned dependencies (pip check); staged so the final image
# only adds its own small layer on top of the unchanged dependency layer.
FROM deps AS app
COPY build/image/project /tmp/project
RUN set -e; \
    pip="/opt/forescale/bin/python $(echo /tmp/wheelhouse/pip-*.whl)/pip"; \
    $pip install --no-index --no-cache-dir --disable-pip-version-check --no-deps /tmp/project/forescale-*.whl; \
    $pip check --disable-pip-version-check; \
    site=/opt/forescale/lib/python3.11/site-packages; \
    mkdir -p "/stage$site" /stage/opt/forescale/bin; \
    cp -a "$site/autoscaler" "$site/predictor" "$site/overrides" "$site"/forescale-*.dist-info "/stage$site/"; \
    cp -a /opt/forescale/bin/forescale /stage/opt/forescale/bin/

FROM ${BASE}
ARG VERSION=dev
ARG REVISION=unknown
RUN groupadd --system --gid 10001 forescale \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/forescale --create-home \
        --shell /usr/sbin/nologin forescale
COPY --from=deps /opt/forescale /opt/forescale
COPY --from=app /stage/ /
ENV PATH=/opt/forescale/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
LABEL org.opencontainers.image.title="forescale" \
      org.opencontainers.image.description="Predictive autoscaler for GPU ML workers on HashiCorp Nomad" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MPL-2.0"
# The audit log and a file override store default to the working directory.
WORKDIR /var/lib/forescale
USER 10001:10001
# /metrics and /healthz (daemon.listen_port; set daemon.listen_host: 0.0.0.0 in a container).
EXPOSE 9464
ENTRYPOINT ["forescale"]
CMD ["--help"]
