#!/bin/sh
# Builds release binaries and runs the full side-by-side benchmark against Postfix.
# The report goes to bench/results/latest.md (and to stdout). Extra arguments are passed to
# `posthorn-bench compare`, e.g. `bench/run.sh --quick` or `bench/run.sh --queue 0`.
set -eu
cd "$(dirname "$0")/.."
cargo build --release -p posthorn -p posthorn-bench
exec target/release/posthorn-bench compare "$@"
