# possum's benchmarks in a container, with every filesystem of the matrix.
#
#   docker build -t possum .
#   docker run --privileged --rm -v "$PWD/bench/out:/src/bench/out" possum
#
# The default command is bench/matrix.sh: possum (and the raw baseline) on
# ext4, xfs, btrfs and tmpfs, results in bench/out/ (mounted above, so they
# land in the host's bench/out/). --privileged is for the loop mounts. To run
# everything (the peer comparison with memcached, possum's Go benchmarks, the
# matrix and the report) as bench/run.sh does natively:
#
#   docker run --privileged --rm -v "$PWD/bench/out:/src/bench/out" possum bench/run.sh
#
# The report (bench/RESULTS.md, bench/charts/) is written inside the
# container; regenerate it on the host from the mounted results with
# `go run -C bench . -report`, or mount the whole bench directory instead
# (-v "$PWD/bench:/src/bench"). Add -quick to either command for a short run.
#
# ext4 here is a loop-mounted image when the container's root filesystem
# (overlayfs) is not ext4. Untested: no Docker engine was available where
# this file was written.
FROM golang:1.26-bookworm

RUN apt-get update \
	&& apt-get install -y --no-install-recommends memcached xfsprogs btrfs-progs e2fsprogs mount sqlite3 \
	&& rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Modules first, for the layer cache: the root module and the bench module
# (which replaces the root module with ../).
COPY go.mod go.sum ./
COPY bench/go.mod bench/go.sum bench/
RUN go mod download && cd bench && go mod download

COPY . .
# Build once so runs start at once: the root package, its test binary, the
# runner.
RUN go build ./... \
	&& go test -c -o /dev/null . \
	&& go build -C bench -o /dev/null .

CMD ["bench/matrix.sh"]
