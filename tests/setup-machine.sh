#!/usr/bin/env bash
# What the test suite needs from the machine, brought up by `make test` itself (never by hand):
#
#   python3-venv     the project's own virtual environment (make install)
#   tmux             the app in a real terminal
#   openssh-server   workers started through ssh on a loopback sshd the tests start themselves
#   postgresql       the test server on 127.0.0.1:5432 (user postgres, trust auth), and the
#                    binaries a fault test runs a throwaway server from
#
# Missing Debian packages are installed when this runs as root with apt-get; otherwise it says
# in one line which are missing and how to install them, and fails. Then it starts what is not
# running. It changes nothing that is already there and working, so running it twice is cheap.
set -uo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

PG_HOST=127.0.0.1
PG_PORT=5432

need=()
python3 -c "import ensurepip" 2>/dev/null || need+=(python3-venv)
command -v tmux >/dev/null || need+=(tmux)
{ [[ -x /usr/sbin/sshd ]] && command -v ssh >/dev/null; } || need+=(openssh-server)
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || need+=(postgresql)

fresh_postgres=0
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    echo "make test needs Debian packages: ${need[*]} (as root: apt-get install -y ${need[*]})" >&2
    exit 1
  fi
  [[ " ${need[*]} " == *" postgresql "* ]] && fresh_postgres=1
  echo "installing ${need[*]} for the tests"
  apt-get update -qq || exit 1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || exit 1
fi

pg_answers() {
  pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null
}

if ! pg_answers; then
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [[ -z $version ]]; then
    echo "PostgreSQL is installed but has no cluster (pg_createcluster --start \$VERSION main)" >&2
    exit 1
  fi
  if ((fresh_postgres)); then
    # a cluster this script just installed: let the tests in as postgres on loopback
    hba=/etc/postgresql/$version/main/pg_hba.conf
    sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_answers && break; sleep 1; done
fi
if ! pg_answers; then
  echo "PostgreSQL does not answer on $PG_HOST:$PG_PORT (the tests create databases there)" >&2
  exit 1
fi
exit 0
