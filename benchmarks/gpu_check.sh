#!/usr/bin/env bash
# GPU check: 4 workers on one GPU with the digits objective for 60 s; GPU utilisation sampled
# each second with nvidia-smi; each worker's trials shown to have run on cuda.
#
#   benchmarks/gpu_check.sh [SECONDS] [WORKERS]      (defaults 60 and 4; about 90 s in all)
#
# On a machine without a GPU it runs the same search on the CPU and says so, so the script can
# be tried before a GPU machine is borrowed. Needs tui-hpo installed (python -m tui_hpo works).
# Writes its figures to $OUT (or ./gpu-check) and prints a summary.
set -euo pipefail
seconds=${1:-60}
workers=${2:-4}
python=${PYTHON:-python3}
out=${OUT:-$PWD/gpu-check}
mkdir -p "$out"
db="$out/gpu-check.db"
rm -f "$db" "$db"-*
export TUI_HPO_STORAGE="sqlite:///$db"

if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  gpus=0
  nvidia-smi -L | tee "$out/gpus.txt"
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits \
    -l 1 >"$out/nvidia-smi.csv" &
  smi=$!
else
  gpus=none
  echo "no GPU answers here: running on the CPU (a dry run of this script)"
  smi=""
fi

start=$(date +%s)
"$python" -m tui_hpo launch objectives.digits:objective --study gpu-check \
  --workers "$workers" --gpus "$gpus" --timeout "$seconds" --pruner none \
  --log-dir "$out/logs" >"$out/launch.txt" 2>&1 || true
end=$(date +%s)
[[ -n $smi ]] && kill "$smi" 2>/dev/null || true

"$python" - "$db" "$out" "$start" "$end" <<'PY'
import json, statistics, sys
from collections import Counter, defaultdict
import optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
db, out, start, end = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
study = optuna.load_study(study_name="gpu-check", storage=f"sqlite:///{db}")
trials = study.get_trials(deepcopy=False)
ended = [t for t in trials if t.state.is_finished()]
by_pid = defaultdict(Counter)
for t in ended:
    by_pid[(t.user_attrs.get("tui_hpo.pid"), t.user_attrs.get("tui_hpo.gpu"))][
        t.user_attrs.get("tui_hpo.device", "?")] += 1
minutes = max(1e-9, (end - start) / 60)
lines = [f"trials ended: {len(ended)} in {end - start:.0f} s = {len(ended) / minutes:.1f} per minute"]
for (pid, gpu), devices in sorted(by_pid.items(), key=str):
    lines.append(f"worker pid {pid} (CUDA_VISIBLE_DEVICES={gpu}): " +
                 ", ".join(f"{n} trial(s) on {d}" for d, n in devices.items()))
util = []
try:
    for row in open(f"{out}/nvidia-smi.csv"):
        parts = [p.strip() for p in row.split(",")]
        if len(parts) >= 3 and parts[1].isdigit():
            util.append(int(parts[1]))
except FileNotFoundError:
    pass
if util:
    busy = [u for u in util if u > 0]
    lines.append(f"GPU utilisation over {len(util)} samples: mean {statistics.mean(util):.0f}%, "
                 f"median {statistics.median(util):.0f}%, max {max(util)}%, "
                 f"busy samples {len(busy)}/{len(util)}")
else:
    lines.append("GPU utilisation: no samples (no GPU)")
all_cuda = all(d.startswith("cuda") for c in by_pid.values() for d in c)
lines.append("every trial ran on cuda: " + ("yes" if all_cuda and by_pid else "no"))
text = "\n".join(lines)
print(text)
open(f"{out}/summary.txt", "w").write(text + "\n")
PY
