# evtship in a container: built from source, run as a non-root user, the pipelines and the
# analysts' Kibana/ML configuration baked in.
#   docker build -t evtship .
#   docker run --rm -e ES_URL=http://host:9200 -v "$PWD/data:/data:ro" evtship run --input /data

# --- build ---
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
RUN cargo build --release --locked --bin evtship \
    && mkdir -p /out/state/checkpoints \
    && cp target/release/evtship /out/evtship

# --- run ---
# distroless/cc: glibc and CA certificates, no shell, no package manager; `nonroot` is uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="evtship" \
      org.opencontainers.image.description="Ships Sysmon and Windows event logs into Elasticsearch or OpenSearch" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"
COPY --from=build /out/evtship /usr/local/bin/evtship
WORKDIR /app
COPY pipelines ./pipelines
COPY config ./config
# State (checkpoints, dead letters) lives in a volume the non-root user owns.
COPY --from=build --chown=65532:65532 /out/state /var/lib/evtship
ENV EVTSHIP_CHECKPOINT_DIR=/var/lib/evtship/checkpoints \
    EVTSHIP_CONFIG_DIR=/app/config
VOLUME ["/var/lib/evtship"]
USER 65532:65532
EXPOSE 9898
ENTRYPOINT ["/usr/local/bin/evtship"]
CMD ["--help"]
