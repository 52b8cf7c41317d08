"""Write a small LeRobot v3.0 dataset with lerobot's own writer (LeRobotDataset.create/add_frame/
save_episode/finalize). Runs in the throwaway environment built by install_lerobot_writer.sh:

    .venv-lerobot/bin/python tests/data/write_lerobot_v3.py OUT_DIR

Content comes from tests/data/synth.py so tests can recompute every value independently.
Episodes: lengths 20, 9 (shorter than the action horizon 16) and 14; one camera 48x64; h264.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synth  # noqa: E402

LENGTHS = (20, 9, 14)
TASKS = ("pick up the red cube", "open the drawer", "pick up the red cube")
H, W, STATE_DIM, ACTION_DIM, FPS = 48, 64, 6, 6, 10


def main(out: str) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    out_p = Path(out)
    if out_p.exists():
        shutil.rmtree(out_p)
    features = {
        "observation.state": {"dtype": "float32", "shape": (STATE_DIM,), "names": None},
        "action": {"dtype": "float32", "shape": (ACTION_DIM,), "names": None},
        "observation.images.front": {
            "dtype": "video",
            "shape": (H, W, 3),
            "names": ["height", "width", "channels"],
        },
    }
    ds = LeRobotDataset.create(
        "local/groot_jax_v3_fixture",
        fps=FPS,
        features=features,
        root=out_p,
        robot_type="so100",
        use_videos=True,
        vcodec="h264",
    )
    for ep, (n, task) in enumerate(zip(LENGTHS, TASKS, strict=True)):
        for i in range(n):
            ds.add_frame(
                {
                    "observation.state": synth.state_row(ep, i, STATE_DIM),
                    "action": synth.action_row(ep, i, ACTION_DIM),
                    "observation.images.front": synth.frame(ep, i, H, W),
                    "task": task,
                }
            )
        ds.save_episode()
    ds.finalize()
    print(f"wrote {out_p}")


if __name__ == "__main__":
    main(sys.argv[1])
