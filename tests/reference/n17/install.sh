#!/usr/bin/env bash
# Build the N1.7 PyTorch reference environment: lerobot 0.6.1's GR00T N1.7 on Python 3.12, CPU.
# On Python 3.12 the registry only has the CUDA build of torch 2.13.0 (~5 GB; it runs on CPU), so
# the Makefile keeps this environment in ~/.cache/groot-jax/n17-ref-<sha12 of this file>, outside
# the clone: CI rebuilds it only when this recipe changes. lerobot 0.6.1 pins torch<2.12 and
# extras we do not need: it is installed without its dependency list, and only what the groot
# policy imports is added (../shared/reference/n17/install.sh is the recipe that ran).
set -euo pipefail
venv=${1:?usage: install.sh VENV_DIR}
rm -rf "$venv"
py=${PYTHON312:-python3.12}
command -v "$py" >/dev/null 2>&1 && "$py" --version >/dev/null 2>&1 || py="env PYENV_VERSION=3.12.1 python3.12"
$py -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q torch==2.13.0
cons=$(mktemp); printf 'torch==2.13.0\nflash-attn<0.0.1\n' >"$cons"
"$venv/bin/pip" install -q --no-deps lerobot==0.6.1
"$venv/bin/pip" install -q -c "$cons" 'transformers>=5.4.0,<5.6.0' 'diffusers>=0.38,<0.40' \
  'huggingface-hub>=1.0.0,<2.0.0' 'numpy>=2.0.0,<2.3.0' 'draccus==0.10.0' 'einops>=0.8.0,<0.9.0' \
  'dm-tree>=0.1.8,<1.0.0' 'safetensors>=0.4.3,<1.0.0' 'Pillow>=10,<13' 'termcolor>=2.4.0,<4' \
  'packaging>=24.2,<26' 'accelerate>=1.10.0,<2' 'gymnasium>=1.0' 'torchvision' \
  'opencv-python-headless' 'peft>=0.18.0,<1.0.0'
rm -f "$cons"
"$venv/bin/python" -c "from lerobot.policies.groot.groot_n1_7 import GR00TN17, GR00TN17Config"
touch "$venv/.installed"
echo "N1.7 reference environment ready: $venv"
