#!/usr/bin/env bash
# What the test suite needs from the machine, brought up by `make test` itself (never by hand):
#
#   python3-venv     the project's own virtual environment (make install)
#   tmux             the app in a real terminal
#   openssh-server   workers started through ssh on a loopback sshd the tests start themselves
#   postgresql       the test server on 127.0.0.1:5432 (user postgres, trust auth), and the
#                    binaries a fault test runs a throwaway server from
#   pgbouncer        transaction pooling in front of a test server (the tests start their own)
#   slurm-wlm munge  a single-node Slurm cluster (this machine, 2 CPUs shared by up to 8 tasks,
#                    4 fake GPUs) that the Slurm tests submit real job arrays to
#   chromium         the browser that loads `tui-hpo serve` (headless, driven by Playwright)
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
{ [[ -x /usr/sbin/slurmctld && -x /usr/sbin/slurmd ]] && command -v sbatch >/dev/null; } ||
  need+=(slurm-wlm)
[[ -x /usr/sbin/munged ]] || need+=(munge)
[[ -x /usr/sbin/pgbouncer ]] || command -v pgbouncer >/dev/null || need+=(pgbouncer)
[[ -x /usr/bin/chromium ]] || need+=(chromium)

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

# Slurm: one node (this machine) that is also the controller. Written only when there is no
# slurm.conf or the one there is ours, so a real cluster's configuration is never touched.
# Without cgroups (a container): processes are tracked through /proc, tasks are not bound, and
# no accounting is gathered. 4 GPUs as GRES on character devices that behave as /dev/null, so
# that Slurm hands each task one and sets CUDA_VISIBLE_DEVICES as it does on a GPU node.
SLURM_MARK="# written by tui-hpo tests/setup-machine.sh"
SLURM_CONF=/etc/slurm/slurm.conf
SLURM_SPOOL=/var/spool/tui-hpo-slurm
FAKE_GPUS=(/dev/tui-hpo-gpu0 /dev/tui-hpo-gpu1 /dev/tui-hpo-gpu2 /dev/tui-hpo-gpu3)

slurm_answers() {
  timeout 10 sinfo -h -o %t >/dev/null 2>&1
}

slurm_node_up() {
  local state
  state=$(timeout 10 sinfo -h -N -o %t 2>/dev/null | head -n 1)
  [[ -n $state && $state != down* && $state != drain* && $state != unk* && $state != inval* ]]
}

ours() {
  grep -qF "$SLURM_MARK" "$SLURM_CONF" 2>/dev/null
}

fake_gpus_there() {
  local dev
  for dev in "${FAKE_GPUS[@]}"; do [[ -c $dev ]] || return 1; done
}

slurm_ready() {
  slurm_answers && slurm_node_up && { ! ours || fake_gpus_there; }
}

slurm_conf_text() {
  local host
  host=$(hostname)
  cat <<CONF
$SLURM_MARK
ClusterName=tui-hpo-test
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
MpiDefault=none
ReturnToService=2
KillWait=5
MinJobAge=30
SchedulerParameters=sched_interval=1,bf_interval=1
StateSaveLocation=$SLURM_SPOOL/ctld
SlurmdSpoolDir=$SLURM_SPOOL/d
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=2 Gres=gpu:4 RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
CONF
}

stop_daemon() {  # the daemon named by its pid file, if that pid is still that daemon
  local pid
  pid=$(cat "/run/$1.pid" 2>/dev/null) || return 0
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$1" ]] || return 0
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null
}

if ! slurm_ready; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "Slurm does not answer (sinfo): run make machine as root to start a one-node cluster" >&2
    exit 1
  fi
  if [[ -e $SLURM_CONF ]] && ! ours; then
    echo "Slurm does not answer (sinfo), and $SLURM_CONF is not ours to rewrite" >&2
    exit 1
  fi
  # munge: a key (once), its run folder owned by its user, the daemon run as that user
  if [[ ! -s /etc/munge/munge.key ]]; then
    mkdir -p /etc/munge
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null ||
      create-munge-key -f >/dev/null 2>&1 || exit 1
  fi
  chown munge:munge /etc/munge /etc/munge/munge.key
  chmod 0700 /etc/munge
  chmod 0400 /etc/munge/munge.key
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge
  chmod 0755 /run/munge
  munge_answers() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
  munge_answers || runuser -u munge -- /usr/sbin/munged --force || exit 1
  for _ in $(seq 1 20); do munge_answers && break; sleep 0.5; done
  # the fake GPUs (/dev is rebuilt on each boot of a container)
  made_gpus=0
  for dev in "${FAKE_GPUS[@]}"; do
    [[ -c $dev ]] && continue
    { rm -f "$dev" && mknod -m 0666 "$dev" c 1 3; } || exit 1
    made_gpus=1
  done
  mkdir -p /etc/slurm "$SLURM_SPOOL/ctld" "$SLURM_SPOOL/d" /var/log/slurm
  wanted=$(slurm_conf_text)
  gres="$SLURM_MARK"$'\n'"Name=gpu File=/dev/tui-hpo-gpu[0-3]"
  if [[ $(cat "$SLURM_CONF" 2>/dev/null) != "$wanted" || $(cat /etc/slurm/gres.conf 2>/dev/null) != "$gres" ]]; then
    printf '%s\n' "$wanted" >"$SLURM_CONF"
    printf '%s\n' "$gres" >/etc/slurm/gres.conf
    stop_daemon slurmd
    stop_daemon slurmctld
  fi
  # slurmd reads its GRES when it starts: one started before the devices were there restarts
  if ((made_gpus)) || ! slurm_node_up; then stop_daemon slurmd; fi
  pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld || exit 1
  for _ in $(seq 1 30); do slurm_answers && break; sleep 0.5; done
  pgrep -x slurmd >/dev/null || /usr/sbin/slurmd || exit 1
  for _ in $(seq 1 40); do slurm_node_up && break; sleep 0.5; done
  # a node left down by an earlier run (daemons killed under it) comes back
  slurm_node_up || scontrol update nodename="$(hostname)" state=resume >/dev/null 2>&1
  for _ in $(seq 1 20); do slurm_node_up && break; sleep 0.5; done
fi
if ! slurm_ready; then
  echo "Slurm does not answer or its node is down (sinfo; logs in /var/log/slurm)" >&2
  exit 1
fi
exit 0
