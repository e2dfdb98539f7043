#!/usr/bin/env bash
# One short run of every GPU measurement the README reports, for a machine with a CUDA GPU.
#
#   1. benchmarks/train_step.py --device cuda: one training step of STNDT / NDT at MC_Maze shapes,
#      float32 and bfloat16 (ms per step, peak CUDA memory);
#   2. benchmarks/pack.py --device cuda: K members trained as one pack (default and MC_Maze shapes);
#   3. one member of the default run, end to end through `stndt.cli train --gpus 1` (train to
#      convergence, infer, score on val), and the default run's four STNDT members as one pack.
#
# Prepare here (writes .devdata/: the default dataset's tensors, truth and its first members' params):
#   bash benchmarks/gpu_check.sh --prepare
# then run on the GPU machine, from the repository root:
#   OUT=/some/folder bash benchmarks/gpu_check.sh
# Everything lands in $OUT (default /tmp/gpu_check): card.txt, train_step.json, pack.json, and
# members.tar.gz (logs, params and val metrics of the end-to-end runs). The last lines printed are a
# summary. Where the GPU machine lacks nlb_tools / pynwb, wheels of them in .whl/ are installed first.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--prepare" ]; then
    set -e
    snakemake --cores all -q results/mc_maze_synth/tensors/val.h5 results/mc_maze_synth/tensors/test.h5 \
        results/mc_maze_synth/truth.h5
    mkdir -p .devdata
    cp results/mc_maze_synth/tensors/val.h5 results/mc_maze_synth/tensors/test.h5 results/mc_maze_synth/truth.h5 .devdata/
    for m in m000 m001 m002 m003; do
        snakemake -n -p --cores 1 "results/mc_maze_synth/members/$m/rates_val.h5" |
            sed -n "s/.*stndt.cli train .*--params '\(.*\)' --gpus.*/\1/p" | head -1 >".devdata/$m.json"
    done
    python -c "import json; json.dump([json.load(open(f'.devdata/m00{i}.json'))[0] for i in range(4)], open('.devdata/pack4.json', 'w'))"
    echo "wrote .devdata/"
    exit 0
fi

OUT=${OUT:-/tmp/gpu_check}
WORK=/tmp/gpu_check_work
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

# Fail in seconds, not minutes, if an import is missing.
python3 -c "import torch, nlb_tools.evaluation, nlb_tools.make_tensors, stndt.commands.training, stndt.train.pack.train, stndt.evaluate.pipeline; assert torch.cuda.is_available()" || exit 1
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c "import torch, numpy; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'numpy', numpy.__version__)"
} | tee "$OUT/card.txt"

echo "== train step"
timeout 150 python3 benchmarks/train_step.py --device cuda --steps 20 --warmup 5 --json >"$OUT/train_step.json" 2>"$WORK/train_step.err" ||
    tail -5 "$WORK/train_step.err"

echo "== one member end to end"
t0=$(date +%s.%N)
python3 -m stndt.cli train --val .devdata/val.h5 --test .devdata/test.h5 --truth .devdata/truth.h5 \
    --out "$WORK/m000" --params "$(cat .devdata/m000.json)" --gpus 1 >"$WORK/m000.log" 2>&1 || tail -20 "$WORK/m000.log"
echo "solo_seconds $(python3 -c "import time; print(round(time.time() - $t0, 1))")" | tee -a "$OUT/card.txt"

echo "== pack"
timeout 150 python3 benchmarks/pack.py --device cuda --packs 1,4,16,32 --steps 10 --warmup 3 --json \
    >"$OUT/pack.json" 2>"$WORK/pack.err" || tail -5 "$WORK/pack.err"

echo "== the default run's four STNDT members as one pack"
t0=$(date +%s.%N)
python3 -m stndt.cli train --val .devdata/val.h5 --test .devdata/test.h5 --truth .devdata/truth.h5 \
    --out "$WORK"/p4/m000 "$WORK"/p4/m001 "$WORK"/p4/m002 "$WORK"/p4/m003 --params "$(cat .devdata/pack4.json)" \
    --gpus 1 --summary "$WORK/p4/pack.json" >"$WORK/p4.log" 2>&1 || tail -20 "$WORK/p4.log"
echo "pack4_seconds $(python3 -c "import time; print(round(time.time() - $t0, 1))")" | tee -a "$OUT/card.txt"

(cd "$WORK" && tar czf "$OUT/members.tar.gz" --exclude='*.pt' --exclude='*.h5' .)
echo "== summary"
python3 - "$OUT" "$WORK" <<'EOF'
import json, sys
from pathlib import Path
out, work = Path(sys.argv[1]), Path(sys.argv[2])
for name in ("train_step.json", "pack.json"):
    try:
        for row in json.loads((out / name).read_text()):
            print(name, json.dumps(row))
    except Exception as e:
        print(name, "missing:", e)
for m in [work / "m000", *sorted((work / "p4").glob("m*"))]:
    try:
        s = json.loads((m / "metrics_val.json").read_text())
        done = [l.split("done: ", 1)[1] for l in (m / "train.log").read_text().splitlines() if " done: " in l]
        print(m.relative_to(work), "co-bps", s["co-bps"], "vel R2", s.get("vel R2"), "psth R2", s.get("psth R2"), *done[-1:])
    except Exception as e:
        print(m, "no metrics:", e)
EOF
