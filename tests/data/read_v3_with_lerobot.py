"""Read a LeRobot v3.0 dataset's metadata and data file with lerobot's own readers and print what
they see as JSON (run in the lerobot writer environment, .venv-lerobot). Video frames are not
decoded here: lerobot's decoders need torchvision, which does not import beside the local CPU
torch; the frames are checked with our decoder instead."""
import json
import sys

from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata
from lerobot.datasets.utils import load_nested_dataset

meta = LeRobotDatasetMetadata("local/check", root=sys.argv[1])
data = load_nested_dataset(meta.root / "data")
print(json.dumps({
    "total_episodes": meta.total_episodes, "total_frames": meta.total_frames, "fps": meta.fps,
    "video_keys": meta.video_keys,
    "tasks": {str(k): int(v) for k, v in meta.tasks["task_index"].items()},
    "lengths": [int(x) for x in meta.episodes["length"]],
    "from_timestamp": {k: [float(x) for x in meta.episodes[f"videos/{k}/from_timestamp"]]
                       for k in meta.video_keys},
    "stats_action_mean": [float(x) for x in meta.stats["action"]["mean"]],
    "state": [[float(x) for x in row["observation.state"]] for row in data],
    "task_index": [int(row["task_index"]) for row in data],
}))
