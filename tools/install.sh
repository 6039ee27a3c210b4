#!/usr/bin/env bash
# Installs PEMIS as a service (docs/OPERATIONS.md, "Install and run as a service"), as root:
#   /usr/local/bin/pemis-server, /usr/local/bin/pemis     the release binaries
#   /etc/pemis/pemis-server.json                          configuration (kept if it exists)
#   /etc/pemis/calendar/                                  working-day calendars (updated)
#   /etc/pemis/prometheus/alerts.yml                      alert rules for Prometheus
#   /var/lib/pemis/                                       the data, owned by the pemis user, 0700
#   /var/lib/pemis-keys/data.key                          the data key file, 0600 (not in the data)
#   /etc/systemd/system/pemis-server.service              the unit (hardened; see the file)
#   /usr/local/share/doc/pemis/                           README and docs/
# and the `pemis` system user. Safe to run again for an upgrade: stop the service first, back up
# /var/lib/pemis, run this, start it (migrations run at start).
#
# Usage: tools/install.sh [--bin DIR]   (DIR: release binaries already built; default: build them)
#        PREFIX=/usr/local ETC=/etc/pemis DATA=/var/lib/pemis tools/install.sh   to move things
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
prefix="${PREFIX:-/usr/local}"
etc="${ETC:-/etc/pemis}"
data="${DATA:-/var/lib/pemis}"
unit_dir="${UNIT_DIR:-/etc/systemd/system}"
bin=""
if [ "${1:-}" = --bin ]; then bin="$(cd "$2" && pwd)"; fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install: run as root (sudo tools/install.sh)" >&2
  exit 1
fi
if [ -z "$bin" ]; then
  tools/setup.sh
  echo "install: building the release binaries (several minutes)" >&2
  swift build -c release --product pemis-server >&2
  swift build -c release --product pemis >&2
  bin="$(swift build -c release --show-bin-path)"
fi
for exe in pemis-server pemis; do
  [ -x "$bin/$exe" ] || { echo "install: $bin/$exe is missing" >&2; exit 1; }
done

# The system user the service runs as: no login, no home of its own but the data directory.
if ! id pemis >/dev/null 2>&1; then
  useradd --system --home-dir "$data" --no-create-home --shell /usr/sbin/nologin --user-group pemis
  echo "install: created the system user pemis"
fi

install -d -m 0755 "$prefix/bin" "$etc" "$etc/calendar" "$etc/prometheus" "$prefix/share/doc/pemis"
install -m 0755 "$bin/pemis-server" "$bin/pemis" "$prefix/bin/"
install -m 0644 Config/calendar/*.json "$etc/calendar/"
install -m 0644 Config/prometheus/alerts.yml "$etc/prometheus/alerts.yml"
install -m 0644 README.md "$prefix/share/doc/pemis/"
install -m 0644 docs/*.md "$prefix/share/doc/pemis/"
if [ -e "$etc/pemis-server.json" ]; then
  echo "install: kept $etc/pemis-server.json (the new default is $etc/pemis-server.json.new)"
  # A configuration from before encryption at rest has no dataKeyFile: its default, beside the
  # data directory ($data.key), is outside the unit's ReadWritePaths, so the upgraded server could
  # not make its key. Point it at the key directory this script makes.
  if ! grep -q '"dataKeyFile"' "$etc/pemis-server.json"; then
    sed -i "0,/{/s|{|{\n  \"dataKeyFile\": \"$data-keys/data.key\",|" "$etc/pemis-server.json"
    grep -q '"dataKeyFile"' "$etc/pemis-server.json" || { echo "install: add \"dataKeyFile\": \"$data-keys/data.key\" to $etc/pemis-server.json" >&2; exit 1; }
    echo "install: added dataKeyFile $data-keys/data.key to $etc/pemis-server.json"
  fi
  sed "s|/var/lib/pemis|$data|; s|/etc/pemis|$etc|" Config/install/pemis-server.json > "$etc/pemis-server.json.new"
  chmod 0644 "$etc/pemis-server.json.new"
else
  sed "s|/var/lib/pemis|$data|; s|/etc/pemis|$etc|" Config/install/pemis-server.json > "$etc/pemis-server.json"
  chmod 0644 "$etc/pemis-server.json"
fi
# Children's records: the pemis user only.
install -d -m 0700 -o pemis -g pemis "$data"
# The audit chain's head, beside the data but not in it (docs/TENANCY.md, "Audit log"); copy it
# off the machine with the backups.
install -d -m 0700 -o pemis -g pemis "$data-audit"
# The data key file, outside the data directory (docs/OPERATIONS.md, "Encryption at rest"): the
# server makes it at the first start; back it up apart from the data.
install -d -m 0700 -o pemis -g pemis "$data-keys"
# A key made by an earlier version at its old default, beside the data directory, moves in: the
# data is sealed with it, and the unit may not write beside /var/lib/pemis.
if [ -e "$data.key" ] && [ ! -e "$data-keys/data.key" ]; then
  mv "$data.key" "$data-keys/data.key"
  chown pemis:pemis "$data-keys/data.key"
  chmod 0600 "$data-keys/data.key"
  echo "install: moved the data key file $data.key to $data-keys/data.key"
fi
install -d -m 0755 "$unit_dir"
sed "s|/usr/local/bin|$prefix/bin|g; s|/etc/pemis|$etc|g; s|/var/lib/pemis|$data|g; s|/usr/local/share|$prefix/share|g" \
  Config/systemd/pemis-server.service > "$unit_dir/pemis-server.service"
chmod 0644 "$unit_dir/pemis-server.service"
echo "install: $("$prefix/bin/pemis-server" --version) in $prefix/bin, configuration in $etc, data in $data"

if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable pemis-server.service
  echo "install: enabled pemis-server.service; start it with: systemctl start pemis-server"
else
  echo "install: systemd is not running here; the unit is installed for when it is."
fi
if [ ! -e "$data/registry.sqlite" ]; then
  echo "install: a new district: create its first administrator (prints a one-time password):"
  echo "  runuser -u pemis -- $prefix/bin/pemis-server init --config $etc/pemis-server.json"
fi
