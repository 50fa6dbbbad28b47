#!/usr/bin/env bash
# Every GPU figure of ddaudit in one prepared run of at most 8 minutes on one GPU.
#
#   bash benchmarks/gpu_suite.sh [--smoke] [--dc-checkout PATH] [--out DIR]
#
# Steps (each with its own timeout; a failed or timed-out step is recorded and the next runs):
#   engine      batched vs sequential evaluator training (bench_engine.py): speed-up, equal predictions
#   reference   `ddaudit check` vs DatasetCondensation's evaluate_synset (bench_vs_reference.py); needs --dc-checkout
#   hooks_dm    fair DM step cost against vanilla DM (bench_hooks.py --skip-dc)
#   hooks_dc    fair DC step cost against vanilla DC (bench_hooks.py --skip-dm)
#   demo        a timed slice of `ddaudit demo --preset gpu`
#   run         `ddaudit run --device cuda` on a DatasetCondensation checkout's main_DM.py; needs --dc-checkout
#   torchrun    `ddaudit check` in 1 process, 2 processes sharing the GPU (NCCL) and torchrun world size 1
# Writes DIR/<step>.json (the scripts' JSON lines), DIR/<step>.log (stderr), DIR/steps.tsv and
# DIR/gpu_results.md (a benchmarks/RESULTS.md fragment), and prints the fragment.
#
# --smoke runs the same steps on the CPU at tiny sizes (gloo instead of NCCL; without
# --dc-checkout the fixture codebase tests/fixtures/codebases/datasetcondensation stands in), so
# the suite is tested in CI while no GPU is lent. Exit status: 0 when every step that ran
# succeeded, 1 when one failed or timed out, 2 for bad arguments or no GPU without --smoke.
set -u

SMOKE=0
DC=""
OUT=""
usage() { echo "usage: bash benchmarks/gpu_suite.sh [--smoke] [--dc-checkout PATH] [--out DIR]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --dc-checkout) [ $# -ge 2 ] || usage; DC="$2"; shift ;;
    --out) [ $# -ge 2 ] || usage; OUT="$2"; shift ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument $1" >&2; usage ;;
  esac
  shift
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python}"
OUT="${OUT:-gpu-suite-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT" || { echo "error: cannot create --out $OUT" >&2; exit 2; }
OUT="$(cd "$OUT" && pwd)"
if [ -n "$DC" ]; then
  [ -f "$DC/utils.py" ] && [ -f "$DC/main_DM.py" ] || { echo "error: --dc-checkout $DC is not a DatasetCondensation checkout (no utils.py / main_DM.py)" >&2; exit 2; }
  DC="$(cd "$DC" && pwd)"
fi
export CI=1 DDAUDIT_DIST_TIMEOUT=120 DDAUDIT_CACHE_DIR="$OUT/cache"  # a cold probe cache, as on a CI runner
B="$ROOT/benchmarks"

if [ "$SMOKE" = 1 ]; then
  MODE=smoke; DEVICE=cpu; SHARED=cpu; BUDGET=170
  export CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=1
  DC_RUN="${DC:-$ROOT/tests/fixtures/codebases/datasetcondensation}"
  [ -n "$DC" ] && DC_NOTE="" || DC_NOTE="fixture stand-in"
  RUN_DEVICE=cpu
  SMALL=(--real-option n_train=300 --real-option n_test=5)
  ENGINE=(--device cpu --evaluators 2 --epochs 1 --ipc 1 --model ConvNetW32 --test-images 20 --threads 1)
  REFERENCE=(--device cpu --epochs 1 --num-eval 1 --ipc 1 --threads 1 "${SMALL[@]}")
  HOOKS=(--device cpu --model ConvNetW32 --ipc 1 --batch-real 8 --threads 1 "${SMALL[@]}")
  HOOKS_DM=(--iterations 1); HOOKS_DC=(--dc-iterations 1 --dc-ipc 1)
  DEMO=(--preset cpu --device cpu --ipc 1 --iterations 2 --num-eval 1 --eval-epochs 2 --surrogate-epochs 1 --threads 1 "${SMALL[@]}")
  DM_ARGS=(--ipc 1 --Iteration 2 --epoch_eval_train 1 --batch_real 8)
  TORCHRUN=(--device cpu --threads 1 --ipc 1 --launch-timeout 30 -- --num-eval 2 --no-reference --no-probe --epochs 1 --n-boot 20 "${SMALL[@]}")
  T_ENGINE=40; T_REFERENCE=60; T_HOOKS_DM=40; T_HOOKS_DC=40; T_DEMO=60; T_RUN=40; T_TORCHRUN=100
else
  MODE=gpu; DEVICE=cuda; SHARED=cuda:0; BUDGET=470
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || { echo "error: torch sees no CUDA GPU; run with --smoke to test the suite on the CPU" >&2; exit 2; }
  DC_RUN="$DC"; DC_NOTE=""; RUN_DEVICE=cuda; SMALL=()
  ENGINE=(--device cuda --evaluators 8 --epochs 200 --ipc 10 --aug dsa --model ConvNet --test-images 1000)
  REFERENCE=(--device cuda --epochs 200 --num-eval 2 --ipc 10 --threads 4)
  HOOKS=(--device cuda --model ConvNet --ipc 10 --batch-real 256 --dsa)
  HOOKS_DM=(--iterations 20); HOOKS_DC=(--dc-iterations 2)
  DEMO=(--preset gpu --device cuda --iterations 500 --num-eval 2 --eval-epochs 300)
  DM_ARGS=(--ipc 10 --Iteration 100 --epoch_eval_train 20 --batch_real 256)
  TORCHRUN=(--device "$SHARED" --threads 4 --ipc 10 --launch-timeout 30 -- --num-eval 4 --no-reference --no-probe --protocol dsa --epochs 100 --n-boot 200)
  T_ENGINE=60; T_REFERENCE=75; T_HOOKS_DM=35; T_HOOKS_DC=45; T_DEMO=180; T_RUN=40; T_TORCHRUN=100
fi

STEPS="$OUT/steps.tsv"
printf 'step\tstatus\trc\tseconds\ttimeout\tcommand\n' > "$STEPS"
START=$SECONDS

# step NAME TIMEOUT CMD...: run CMD under its timeout (cut to what is left of the suite's budget),
# stdout to NAME.json, stderr to NAME.log, one row in steps.tsv.
step() {
  local name="$1" limit="$2"; shift 2
  local left=$((BUDGET - (SECONDS - START)))
  [ "$left" -lt "$limit" ] && limit="$left"
  local command; command="$(printf '%q ' "$@")"
  if [ "$limit" -lt 5 ]; then
    printf '%s\tskipped\t\t0\t0\t%s\n' "$name" "no time left in the suite's budget" >> "$STEPS"
    echo "[$name] skipped: no time left in the suite's budget" >&2
    return
  fi
  echo "[$name] $command (timeout ${limit} s)" >&2
  local t0 t1 rc status
  t0=$(date +%s.%N)
  timeout --kill-after=5 "$limit" "$@" > "$OUT/$name.json" 2> "$OUT/$name.log"
  rc=$?
  t1=$(date +%s.%N)
  case $rc in
    0) status=ok ;;
    124|137) status=timeout ;;
    *) status=failed ;;
  esac
  local seconds; seconds=$(awk "BEGIN{printf \"%.1f\", $t1 - $t0}")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$seconds" "$limit" "$command" >> "$STEPS"
  echo "[$name] $status (rc $rc, ${seconds} s)" >&2
}

skip() {
  printf '%s\tskipped\t\t0\t0\t%s\n' "$1" "$2" >> "$STEPS"
  echo "[$1] skipped: $2" >&2
}

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "mode: $MODE"
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" -c "import torch; print('torch', torch.__version__, '| cuda', torch.version.cuda, '| device', torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu', '| torch threads', torch.get_num_threads(), '| OMP_NUM_THREADS', __import__('os').environ.get('OMP_NUM_THREADS', 'unset'))"
} | tee "$OUT/environment.txt" >&2

step engine "$T_ENGINE" "$PY" "$B/bench_engine.py" "${ENGINE[@]}"
if [ -n "$DC_RUN" ]; then
  step reference "$T_REFERENCE" "$PY" "$B/bench_vs_reference.py" --dc-path "$DC_RUN" "${REFERENCE[@]}"
else
  skip reference "no --dc-checkout given: the reference evaluate_synset needs a DatasetCondensation checkout"
fi
step hooks_dm "$T_HOOKS_DM" "$PY" "$B/bench_hooks.py" "${HOOKS[@]}" "${HOOKS_DM[@]}" --skip-dc
step hooks_dc "$T_HOOKS_DC" "$PY" "$B/bench_hooks.py" "${HOOKS[@]}" "${HOOKS_DC[@]}" --skip-dm
rm -rf "$OUT/demo"
step demo "$T_DEMO" "$PY" -m ddaudit demo "${DEMO[@]}" --out "$OUT/demo" --json "$OUT/demo_reports.json" --force
if [ -n "$DC_RUN" ]; then
  rm -rf "$OUT/run"; mkdir -p "$OUT/run"
  step run "$T_RUN" "$PY" -m ddaudit run --codebase datasetcondensation --mode sync --dataset cmnist-fg \
    "${SMALL[@]/--real-option/--dataset-option}" --device "$RUN_DEVICE" --summary "$OUT/run_summary.json" --force -- \
    "$DC_RUN/main_DM.py" --dataset MNIST "${DM_ARGS[@]}" --num_exp 1 --num_eval 1 --save_path "$OUT/run/result"
else
  skip run "no --dc-checkout given: ddaudit run needs a DatasetCondensation checkout"
fi
step torchrun "$T_TORCHRUN" "$PY" "$B/bench_torchrun.py" --processes 1 2 --torchrun-one "${TORCHRUN[@]}"

"$PY" "$B/gpu_suite_report.py" "$OUT" --mode "$MODE" --dc-note "$DC_NOTE"
