#!/usr/bin/env bash
# The peer's environment: lerobot 0.6.1 with its policies (ACT, diffusion) on Python 3.12, plus
# Meta-World at the versions .venv has, for experiments/closed_loop/peer_lerobot.py. Outside the
# clone (~5.4 GB: the registry's CUDA build of torch 2.11 + torchvision 0.26, run on the CPU);
# not part of `make test`. Built on 2026-12-03 in ~2 min.
set -euo pipefail
venv=${1:?usage: install_peer.sh VENV_DIR (e.g. ~/.cache/groot-jax/lerobot061-peer)}
rm -rf "$venv"
PYENV_VERSION=${PYENV_VERSION:-3.12.1} python3.12 -m venv "$venv"
pip="$venv/bin/pip -q --disable-pip-version-check"
$pip install --upgrade pip
$pip install 'lerobot[dataset]==0.6.1'
$pip install metaworld==3.1.1 mujoco==3.3.0 matplotlib
touch "$venv/.installed"
