#!/usr/bin/env bash
# The MT10 schedule of 2026-12-03 (experiments/closed_loop/README.md), unattended on a 2-core
# machine, one job per core: GR00T seed 0 | ACT; then core 0: GR00T seed 1, eval seed 1 and
# core 1: eval seed 0 + baselines, eval ACT. Every training run has the same budget B on one core.
R=$(realpath "${1:?usage: mt10_two_cores.sh OUT_DIR (holding dataset/ and tokenizer/ from groot-jax record)}")
cd "$(dirname "$0")/../.."
PEER=${PEER:-~/.cache/groot-jax/lerobot061-peer}/bin/python
export MUJOCO_GL=egl PYTHONPATH=$PWD
B=30   # wall-clock training budget, minutes, one core each
while pgrep -f "record metaworld --tasks mt10" >/dev/null; do sleep 10; done
test -f $R/dataset/meta/recording.json || { echo "no dataset" > $R/FAILED; exit 1; }
gtrain() {  # seed core
  /usr/bin/time -v -o $R/time_seed$1.txt timeout -s TERM ${B}m taskset -c $2 .venv/bin/groot-jax train \
    --config finetune_small --dataset $R/dataset --tokenizer $R/tokenizer seed=$1 steps=1500 \
    checkpoint.dir=$R/seed$1 checkpoint.every=250 progress=False log_every=50 > $R/train_seed$1.log 2>&1
}
geval() {  # seed core extra...
  s=$1; c=$2; shift 2
  taskset -c $c .venv/bin/groot-jax eval closed-loop --model $R/seed$s --env metaworld --tasks mt10 \
    --episodes 50 --seed 1 --replan 8 --max-steps 150 --image 64 --out $R/eval_seed$s "$@" > $R/eval_seed$s.log 2>&1
}
date > $R/phase1.start
gtrain 0 0 &
timeout -s TERM $((B+2))m taskset -c 1 $PEER experiments/closed_loop/peer_lerobot.py train --dataset $R/dataset \
  --out $R/act_seed0 --budget-min $B --seed 0 > $R/train_act.log 2>&1 &
wait
date > $R/phase2.start
# After phase 1 each core runs its own chain: an eval is not timed, so it need not wait.
( gtrain 1 0; geval 1 0 ) &
( geval 0 1 --baselines --videos 2
  taskset -c 1 $PEER experiments/closed_loop/peer_lerobot.py eval --model $R/act_seed0 --tasks mt10 \
    --episodes 50 --seed 1 --replan 8 --max-steps 150 --image 64 --out $R/eval_act > $R/eval_act.log 2>&1 ) &
wait
date > $R/DONE
