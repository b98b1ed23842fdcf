# rdslocal — see README.md. `make run` starts the emulator, `make test` runs
# every test (installing PostgreSQL, MariaDB and the AWS CLI from Debian
# packages when they are missing).

GO          ?= go
BIN         := bin/rdslocal
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
ARGS        ?=

.PHONY: all build run test deps lint fuzz bench soak conformance clean image image-test

all: build

build:
	$(GO) build -o $(BIN) .

run: build
	./$(BIN) $(ARGS)

deps:
	./scripts/ensure-deps.sh

# The fuzz targets' seed corpora run as ordinary tests here. Packages run
# one at a time (-p 1): several start database servers and hundreds of
# clients, and two cores shared by all of them under -race starve the
# handshake deadlines the tests check.
test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -p 1 -timeout 40m ./...

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Runs each fuzz target for FUZZTIME (default 20s).
FUZZTIME ?= 20s
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

# The data-plane benchmark (about 12 minutes): the PostgreSQL proxy against
# the database directly and against PgBouncer, the MySQL proxy against
# MariaDB directly with sysbench (PgBouncer and sysbench installed from
# Debian when missing); prints the figures and updates BENCHMARKS.md. Not
# part of `make test`. Options: make bench BENCH_ARGS='-families mysql'
# (one section alone), BENCH_ARGS='-T 5s -idle 1000' (see
# `go run ./cmd/rdslocal-bench -h`).
bench: build deps
	ulimit -n 20000 2>/dev/null || true; $(GO) run ./cmd/rdslocal-bench $(BENCH_ARGS)

# The failover soak (about 9 minutes): commit latency of lone, Multi-AZ and
# cluster writers (what synchronous replication costs), then 500 clients
# through a proxy in front of an Aurora PostgreSQL cluster whose writer is
# failed over and killed again and again; prints the figures and updates
# BENCHMARKS.md. Not part of `make test`. Options: make soak
# SOAK_ARGS='-clients 100 -duration 2m'; '-engine aurora-mysql' soaks a MYSQL proxy
# (figures printed only; see `go run ./cmd/rdslocal-soak -h`).
soak: build deps
	ulimit -n 20000 2>/dev/null || true; $(GO) run ./cmd/rdslocal-soak $(SOAK_ARGS)

# The container image (docker/Dockerfile) as rdslocal:latest (IMAGE=…), built
# from Debian packages and the host's Go toolchain, with no image registry
# needed; starts dockerd when none answers (as root on Debian). See
# docker/build.sh.
image:
	./docker/build.sh

# Runs the image for real: fixtures, init hook, connections through the
# published proxy ports with a password and an IAM token, HEALTHCHECK, the CI
# service-container path and docker/compose.yaml. See docker/image-test.sh.
image-test: image build
	./docker/image-test.sh

# Real drivers' own test suites through the proxy (about 4 minutes): pgx's
# packages and go-sql-driver/mysql's (the versions in go.mod, from the
# module cache) run against rdslocal DB instances (postgres, mariadb)
# directly and through an RDS Proxy endpoint in front of each; prints per
# driver every test that passes directly but not through the proxy and
# fails if there is one (apart from the documented exclusions in
# cmd/rdslocal-conformance). Options: make conformance
# CONFORMANCE_ARGS='-drivers mysql' or '-drivers pgx -pkgs pgconn -run
# TestCopy' (see `go run ./cmd/rdslocal-conformance -h`).
conformance: build deps
	$(GO) run ./cmd/rdslocal-conformance $(CONFORMANCE_ARGS)

clean:
	rm -rf bin
