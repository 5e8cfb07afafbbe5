#!/bin/sh
# Builds release binaries and runs the full side-by-side benchmark against Postfix and Exim.
# The report goes to bench/results/latest.md (and to stdout). Extra arguments are passed to
# `posthorn-bench compare`, e.g. `bench/run.sh --quick` or `bench/run.sh --queue 0`.
# Needs root and Debian's postfix package (for a private Postfix, smtp-source, smtp-sink).
#
# `bench/run.sh imap [ARGS]` runs the IMAP comparison with Dovecot instead (~10 min) and writes
# bench/results/imap.md; ARGS go to `posthorn-bench imap`, e.g. `--large 0` (see --help).
# Needs root (it drops the page cache before the large mailbox's first session) and
# Debian's dovecot-imapd, installed here when missing.
set -eu
cd "$(dirname "$0")/.."
cargo build --release -p posthorn -p posthorn-bench

if [ "${1:-}" = imap ]; then
  shift
  if [ ! -x /usr/lib/dovecot/imap ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dovecot-imapd
  fi
  exec target/release/posthorn-bench imap "$@"
fi

# Exim is unpacked from Debian's exim4-daemon-light, not installed: Debian allows one MTA
# package, and Postfix is that one. Its libraries are installed; it runs as the user its
# build names.
if [ ! -x target/exim/usr/sbin/exim4 ]; then
  libraries=$(apt-cache depends exim4-daemon-light | awk '/Depends: lib/ {print $2}')
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $libraries
  download=$(mktemp -d)
  (cd "$download" && apt-get download exim4-daemon-light)
  dpkg-deb -x "$download"/exim4-daemon-light_*.deb target/exim
  rm -rf "$download"
fi
id Debian-exim >/dev/null 2>&1 ||
  useradd --system --no-create-home --shell /usr/sbin/nologin Debian-exim

exec target/release/posthorn-bench compare "$@"
