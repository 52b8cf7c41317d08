"""Embodiment tags -> projector index (spec 8), and presets of the original's data configs."""

from __future__ import annotations

from groot_jax.data.modality import DataConfig

EMBODIMENT_TAG_TO_ID: dict[str, int] = {
    "gr1": 24,
    "oxe_droid": 17,
    "agibot_genie1": 26,
    "new_embodiment": 31,
    # Latent actions from the VQ-VAE (groot-jax latent-actions label) train their own projector
    # slot, as GR00T N1 treats them as a separate embodiment. Slot 30 is our choice (the original's
    # latent-action slot is not published); it is unused by the tags above.
    "latent_action": 30,
}


def embodiment_id(tag: str) -> int:
    if tag not in EMBODIMENT_TAG_TO_ID:
        raise KeyError(f"unknown embodiment tag {tag!r}; known: {sorted(EMBODIMENT_TAG_TO_ID)}")
    return EMBODIMENT_TAG_TO_ID[tag]


_GR1_KEYS = ("left_arm", "right_arm", "left_hand", "right_hand", "waist")
_AGIBOT_KEYS = (
    "left_arm_joint_position",
    "right_arm_joint_position",
    "left_effector_position",
    "right_effector_position",
    "head_position",
    "waist_position",
)


def gr1_arms_waist() -> DataConfig:
    """Fourier GR1 arms + waist: state sin/cos (58-d), action min_max (29-d)."""
    return DataConfig(
        name="fourier_gr1_arms_waist",
        embodiment_tag="gr1",
        video_keys=("video.ego_view",),
        state_keys=tuple(f"state.{k}" for k in _GR1_KEYS),
        action_keys=tuple(f"action.{k}" for k in _GR1_KEYS),
        language_keys=("annotation.human.coarse_action",),
        state_normalization={f"state.{k}": "sin_cos" for k in _GR1_KEYS},
        action_normalization={f"action.{k}": "min_max" for k in _GR1_KEYS},
    )


def gr1_arms_only() -> DataConfig:
    keys = _GR1_KEYS[:4]
    return DataConfig(
        name="fourier_gr1_arms_only",
        embodiment_tag="gr1",
        video_keys=("video.ego_view",),
        state_keys=tuple(f"state.{k}" for k in keys),
        action_keys=tuple(f"action.{k}" for k in keys),
        language_keys=("annotation.human.action.task_description",),
        state_normalization={f"state.{k}": "sin_cos" for k in keys},
        action_normalization={f"action.{k}": "min_max" for k in keys},
    )


def oxe_droid() -> DataConfig:
    """OXE DROID: delta EEF actions, rotation_6d state rotation, axis-angle action rotation."""
    return DataConfig(
        name="oxe_droid",
        embodiment_tag="oxe_droid",
        video_keys=("video.exterior_image_1", "video.exterior_image_2", "video.wrist_image"),
        state_keys=("state.eef_position", "state.eef_rotation", "state.gripper_position"),
        action_keys=(
            "action.eef_position_delta",
            "action.eef_rotation_delta",
            "action.gripper_position",
        ),
        language_keys=("annotation.language.language_instruction",),
        state_normalization={"state.eef_position": "min_max", "state.gripper_position": "min_max"},
        state_target_rotations={"state.eef_rotation": "rotation_6d"},
        action_normalization={"action.gripper_position": "binary"},
        action_target_rotations={"action.eef_rotation_delta": "axis_angle"},
    )


def agibot_genie1() -> DataConfig:
    return DataConfig(
        name="agibot_genie1",
        embodiment_tag="agibot_genie1",
        video_keys=("video.top_head", "video.hand_left", "video.hand_right"),
        state_keys=tuple(f"state.{k}" for k in _AGIBOT_KEYS),
        action_keys=tuple(f"action.{k}" for k in _AGIBOT_KEYS),
        language_keys=("annotation.language.action_text",),
        state_normalization={f"state.{k}": "min_max" for k in _AGIBOT_KEYS},
        action_normalization={f"action.{k}": "min_max" for k in _AGIBOT_KEYS},
    )


def so100(video_keys=("video.webcam",)) -> DataConfig:
    """SO-100 style single arm (the original's `so100` config), finetuned as new_embodiment."""
    return DataConfig(
        name="so100",
        embodiment_tag="new_embodiment",
        video_keys=tuple(video_keys),
        state_keys=("state.single_arm", "state.gripper"),
        action_keys=("action.single_arm", "action.gripper"),
        language_keys=("annotation.human.task_description",),
        state_normalization={"state.single_arm": "min_max", "state.gripper": "min_max"},
        action_normalization={"action.single_arm": "min_max", "action.gripper": "min_max"},
    )


# Data-config presets by name (`--data-config` of `groot-jax eval` / `serve`). Not the same table
# as groot_jax.config.PRESETS, which names model architectures: a data config says which keys of
# a dataset feed the model and how they are normalized, and any of these goes with any model
# whose padding widths and action horizon match (prompt.check_model_config). Different things
# with different keys, hence two registries.
PRESETS = {
    "fourier_gr1_arms_waist": gr1_arms_waist,
    "fourier_gr1_arms_only": gr1_arms_only,
    "oxe_droid": oxe_droid,
    "agibot_genie1": agibot_genie1,
    "so100": so100,
}
