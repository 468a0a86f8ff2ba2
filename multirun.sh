#!/usr/bin/env bash
# The transfer study, end to end:
#   1. pre-train tiny BERT with MLM (or tiny GPT-2 with CLM) on the unlabeled WordNet corpus, once
#      (or take any HF checkpoint with --source);
#   2. a Hydra multirun over train fraction x init (scratch | pretrained) x freeze x seed on WordNet topics, and the
#      TF-IDF + logistic-regression baseline over the same fractions and seeds (transferlab-baseline);
#   3. transferlab-report over both: report.md (with its Claims section), results.csv, learning_curves.png.
#
# Usage: ./multirun.sh [--fast] [--seeds N] [--fractions 0.01,0.1,1.0] [--freezes none,backbone,lora]
#                      [--launcher basic|joblib|submitit_local|submitit_slurm] [--arch bert|gpt2] [--source ID_OR_DIR]
#                      [--tune KEY=V1,V2,...]... [--select-by acc|f1_macro|mcc|loss] [--out DIR] [-- extra overrides]
# --arch bert pre-trains tiny BERT with MLM (the default), --arch gpt2 tiny GPT-2 with CLM; --source skips
# pre-training and runs the study from that checkpoint (a hub id or a local HF-format dir, with its tokenizer).
# --tune lr=1e-4,5e-4,1e-3 (repeatable; lr is optimizer.lr) selects per arm and fraction on validation: the grid
# runs with the first seed, the highest validation accuracy wins (tuning.json), then the chosen values run with all
# seeds. Every tuning and final run then keeps its best checkpoint by val/acc, so each run tests the checkpoint it
# was chosen by. --select-by f1_macro|mcc selects (and checkpoints) by that score, --select-by loss by the lowest
# val/loss (the checkpoint default).
# Extra overrides reach the sweep (and the tuning runs); those of data and objective (data=files data.train=...)
# reach the TF-IDF baseline too. Pre-training stays on its own corpus.
# The same settings can come from the environment: FAST=1 SEEDS=3 FRACTIONS=... FREEZES=... LAUNCHER=... ARCH=...
# SOURCE=... OUT=... TUNE="lr=1e-4,1e-3 KEY=..." SELECT_BY=acc and PRETRAIN_STEPS (default: the pretrain experiment's
# own schedule, ~15 min for MLM). --fast is a few-minute smoke run of the same pipeline.
set -euo pipefail

FAST=${FAST:-0}
SEEDS=${SEEDS:-3}
FRACTIONS=${FRACTIONS:-0.01,0.1,1.0}
FREEZES=${FREEZES:-none,backbone,lora}
LAUNCHER=${LAUNCHER:-basic}
ARCH=${ARCH:-bert}
OUT=${OUT:-outputs}
SOURCE=${SOURCE:-}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-}
SELECT_BY=${SELECT_BY:-}
TUNE_SPECS=()
[ -n "${TUNE:-}" ] && read -r -a TUNE_SPECS <<< "$TUNE"
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds|--fractions|--freezes|--launcher|--arch|--source|--out|--tune|--select-by)
      [ $# -ge 2 ] || { echo "error: $1 needs a value; see ./multirun.sh --help" >&2; exit 2; } ;;
  esac
  case "$1" in
    --fast) FAST=1 ;;
    --seeds) SEEDS=$2; shift ;;
    --fractions) FRACTIONS=$2; shift ;;
    --freezes) FREEZES=$2; shift ;;
    --launcher) LAUNCHER=$2; shift ;;
    --arch) ARCH=$2; shift ;;
    --source) SOURCE=$2; shift ;;
    --out) OUT=$2; shift ;;
    --tune) TUNE_SPECS+=("$2"); shift ;;
    --select-by) SELECT_BY=$2; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "multirun.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

here=$(cd "$(dirname "$0")" && pwd)
train=${TRAIN:-transferlab-train}
report=${REPORT:-transferlab-report}
baseline=${BASELINE:-transferlab-baseline}
if ! command -v "$train" >/dev/null 2>&1 && [ -x "$here/.venv/bin/transferlab-train" ]; then
  train="$here/.venv/bin/transferlab-train"
  report="$here/.venv/bin/transferlab-report"
  baseline="$here/.venv/bin/transferlab-baseline"
fi
# the tuning selection runs in the Python that runs transferlab-train (a venv's, pipx's), else python3
python=${PYTHON:-$(dirname "$(command -v "$train" || echo "$train")")/python}
[ -x "$python" ] || python=python3

if [ "$FAST" = 1 ]; then
  [ "${FRACTIONS}" = "0.01,0.1,1.0" ] && FRACTIONS=0.1,1.0
  [ "${FREEZES}" = "none,backbone,lora" ] && FREEZES=none,backbone
  [ "${SEEDS}" = 3 ] && SEEDS=1
  PRETRAIN=(data.max_train_samples=2000 data.max_eval_samples=200 trainer.max_steps=20 trainer.max_epochs=-1
            trainer.val_check_interval=10 trainer.check_val_every_n_epoch=null tokenizer.vocab_size=2000 logger=csv)
  SWEEP=(data.max_train_samples=300 data.max_eval_samples=100 trainer.max_steps=8 trainer.val_check_interval=4
         trainer.check_val_every_n_epoch=null logger=csv)
  BASE=(data.max_train_samples=300 data.max_eval_samples=100)
else
  PRETRAIN=()
  if [ -n "$PRETRAIN_STEPS" ]; then
    PRETRAIN=("trainer.max_steps=$PRETRAIN_STEPS" trainer.max_epochs=-1 trainer.val_check_interval=500 trainer.check_val_every_n_epoch=null)
  fi
  SWEEP=()
  BASE=()
fi
case "$ARCH" in
  bert) pretrain=pretrain_mlm ;;
  gpt2) pretrain=pretrain_clm ;;
  *) echo "multirun.sh: --arch must be bert or gpt2, not '$ARCH'" >&2; exit 2 ;;
esac
seeds=$(seq -s, 1 "$SEEDS")
launcher=()
[ "$LAUNCHER" != basic ] && launcher=("hydra/launcher=$LAUNCHER")
DATA_EXTRA=()  # the overrides that say which data and how it is read: the baseline arm needs them too
for o in "${EXTRA[@]}"; do
  case "${o#"${o%%[!+~]*}"}" in data=*|data.*|objective=*|objective.*) DATA_EXTRA+=("$o") ;; esac
done
TUNE_GRID=()
[ ${#TUNE_SPECS[@]} -gt 0 ] && SELECT_BY=${SELECT_BY:-acc}  # the study's reported score (measured: docs/study.md)
MONITOR=()  # --select-by other than loss: every tuning and final run keeps its best checkpoint by that score
if [ ${#TUNE_SPECS[@]} -gt 0 ]; then  # check the grid and print its cost before any heavy work
  plan=$("$python" -m transferlab.report.select plan --inits 2 --freezes "$FREEZES" --fractions "$FRACTIONS" \
         --seeds "$SEEDS" --by "$SELECT_BY" "${EXTRA[@]/#/--extra=}" "${TUNE_SPECS[@]/#/--grid=}") || exit 2
  echo "${plan%%$'\n'*}"
  mapfile -t TUNE_GRID < <(tail -n +2 <<< "$plan")
  [ "$SELECT_BY" != loss ] && MONITOR=("callbacks.checkpoint.monitor=val/$SELECT_BY" callbacks.checkpoint.mode=max)
elif [ -n "$SELECT_BY" ]; then
  echo "error: --select-by $SELECT_BY picks among --tune values; add --tune lr=V1,V2,..." >&2; exit 2
fi

stamp="$(date +%Y-%m-%d_%H-%M-%S)_$$"
study="$OUT/study/$stamp"
echo "study dir: $study"
start=$(date +%s)

if [ -n "$SOURCE" ]; then
  source_dir=$SOURCE  # a hub id or a local dir: both init arms read it (weights, or architecture and tokenizer)
else
  "$train" "experiment=$pretrain" "hydra.run.dir=$study/pretrain" paths.output_dir="$OUT" "${PRETRAIN[@]}"
  source_dir=$study/pretrain/export
fi

status=0
study_job=(experiment=study "pretrained_source=$source_dir" paths.output_dir="$OUT" "${launcher[@]}" "${MONITOR[@]}")
if [ ${#TUNE_GRID[@]} -eq 0 ]; then
  "$train" -m "${study_job[@]}" "init=scratch,pretrained" "freeze=$FREEZES" "data.train_fraction=$FRACTIONS" \
    "seed=$seeds" "hydra.sweep.dir=$study/sweep" "${SWEEP[@]}" "${EXTRA[@]}" || status=$?
else
  # the grid with the first seed, the choice on validation (tuning.json), then each arm's choice with every seed
  "$train" -m "${study_job[@]}" "init=scratch,pretrained" "freeze=$FREEZES" "data.train_fraction=$FRACTIONS" \
    "seed=${seeds%%,*}" "${TUNE_GRID[@]}" "hydra.sweep.dir=$study/tune" "${SWEEP[@]}" "${EXTRA[@]}" || status=$?
  "$python" -m transferlab.report.select select "$study/tune" --out "$study/tuning.json" --by "$SELECT_BY" \
    "${TUNE_GRID[@]/#/--grid=}" || status=$?
  arms=()
  if [ -f "$study/tuning.json" ]; then
    mapfile -t arms < <("$python" -m transferlab.report.select overrides "$study/tuning.json")
  fi
  for arm in "${arms[@]}"; do
    read -r -a pinned <<< "$arm"
    name=$(sed 's/[^ ]*=//g; s/ /_/g' <<< "${pinned[*]:0:3}")  # e.g. pretrained_none_0.1
    "$train" -m "${study_job[@]}" "${pinned[@]}" "seed=$seeds" "hydra.sweep.dir=$study/sweep/$name" \
      "${SWEEP[@]}" "${EXTRA[@]}" || status=$?
  done
fi
"$baseline" -m "data.train_fraction=$FRACTIONS" "seed=$seeds" "hydra.sweep.dir=$study/baseline" \
  paths.output_dir="$OUT" "${BASE[@]}" "${DATA_EXTRA[@]}" || status=$?

"$report" "$study/sweep" "$study/baseline" --out "$study" || true
echo "study took $(( $(date +%s) - start ))s; report: $study/report.md"
exit $status
