#!/usr/bin/env bash
# Build the PyTorch reference environment: lerobot 0.5.1's vendored GR00T N1.5 on Python 3.11, CPU.
# lerobot 0.5.1 declares Python >= 3.12, torch < 2.11 and a flash-attn extra; we install it without
# its dependency list and add only what the model code imports (see ../shared/reference/README.md).
set -euo pipefail
venv=${1:?usage: install.sh VENV_DIR}
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q torch==2.13.0            # local CPU wheel, before anything can pull a CUDA build
cons=$(mktemp); printf 'torch==2.13.0\ntorchvision<0.0.1\nflash-attn<0.0.1\n' >"$cons"
"$venv/bin/pip" install -q --no-deps --ignore-requires-python lerobot==0.5.1
"$venv/bin/pip" install -q -c "$cons" 'transformers==5.3.0' 'diffusers>=0.27.2,<0.36.0' \
  'huggingface-hub>=1.0.0,<2.0.0' 'numpy>=2.0.0,<2.3.0' 'draccus==0.10.0' 'einops>=0.8.0,<0.9.0' \
  'peft>=0.18.0,<1.0.0' 'dm-tree>=0.1.8,<1.0.0' 'safetensors>=0.4.3,<1.0.0' 'Pillow>=10,<13' \
  'termcolor>=2.4.0,<4' 'packaging>=24.2,<26' 'accelerate>=1.10.0,<2'
rm -f "$cons"
touch "$venv/.installed"
echo "reference environment ready: $venv"
