# stepgate container image: a static binary on a distroless base, running as
# a non-root user. The root filesystem can be mounted read-only: stepgate
# writes nothing to disk. Kubernetes probes use admin_listen's /healthz and
# /readyz, so the image defines no HEALTHCHECK.
#
# Build: docker build -t stepgate .
# The same binary is built in CI with: CGO_ENABLED=0 go build -tags nodemo -trimpath -ldflags="-s -w" -o stepgate .
# -tags nodemo leaves the development provider and the demo bank out.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -tags nodemo -trimpath -ldflags="-s -w" -o /out/stepgate .

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="stepgate" \
      org.opencontainers.image.description="Reverse-proxy gateway enforcing OpenID Connect step-up authentication per route" \
      org.opencontainers.image.source="https://github.com/stepgate/stepgate" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/stepgate /stepgate
USER nonroot:nonroot
EXPOSE 8080 9090
ENTRYPOINT ["/stepgate"]
CMD ["serve", "-config", "/etc/stepgate/routes.yaml"]
