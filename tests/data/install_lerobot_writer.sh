#!/usr/bin/env bash
# Throwaway environment holding lerobot 0.4.4 (the newest lerobot for Python 3.11; it writes LeRobot
# format v3.0). Used only by tests/data/write_lerobot_v3.py to build a v3.0 fixture with lerobot's own
# writer. Recipe from ../shared/notes/simulation.md: CPU torch first, lerobot without its dependency
# list, then only what lerobot.datasets needs for writing, and a stand-in torchvision (the registry's
# torchvision wheels are CUDA builds; lerobot.datasets imports only torchvision.transforms at import).
set -euo pipefail
venv=${1:?usage: install_lerobot_writer.sh VENV_DIR}
rm -rf "$venv"
python3 -m venv "$venv"
pip="$venv/bin/pip -q --disable-pip-version-check"
$pip install --upgrade pip
$pip install torch==2.13.0
$pip install --no-deps lerobot==0.4.4
$pip install 'datasets>=4,<5' 'huggingface-hub>=0.34.2,<0.36' 'av>=15,<16' 'packaging<26' 'pillow<13' \
  'numpy>=2,<2.3' 'pandas>=2' 'pyarrow>=18' 'jsonlines>=4' 'draccus==0.10.0' 'termcolor>=2.4' \
  'einops>=0.8' 'accelerate>=1.10' 'deepdiff>=7' 'imageio[ffmpeg]>=2.34'
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p "$site/torchvision/transforms"
cat >"$site/torchvision/__init__.py" <<'PY'
"""Stand-in for torchvision (lerobot.datasets imports it; the writer path never calls it)."""
__version__ = "0.0.0+standin"
from . import transforms  # noqa: F401
PY
cat >"$site/torchvision/transforms/__init__.py" <<'PY'
"""Stand-in: only the names lerobot.datasets imports."""
class _Unavailable:
    def __init__(self, *a, **k):
        raise RuntimeError("torchvision stand-in: transforms are not available in the writer env")
ToTensor = Compose = Resize = Normalize = _Unavailable
PY
mkdir -p "$site/torchvision/transforms/v2"
cat >"$site/torchvision/transforms/v2/__init__.py" <<'PY'
"""Stand-in: lerobot's image_transforms imports these names."""
from .. import _Unavailable
Transform = object
ColorJitter = RandomAffine = SharpnessJitter = Compose = _Unavailable
class functional:  # noqa: N801
    pass
PY
touch "$venv/.installed"
echo "lerobot writer environment ready: $venv"
