"""Data layer: LeRobot v2.1/v3.0, RLDS and action-less sources, GR00T transforms, Grain pipelines.

Module map (one job each):
  errors      DataError, the one exception type this package raises for bad input
  video       PyAV decoding at exact timestamps with a per-process decoder cache
  modality    modality.json parsing, ModalityConfig / DataConfig, delta indices, edge padding
  embodiments embodiment tag -> projector id, presets of the original's data configs
  source      the shared episode-source base (random access by (episode, frame))
  lerobot_v2  LeRobot v2.0/v2.1, GR00T flavour (per-episode parquet and mp4)
  lerobot_v3  LeRobot v3.0 (chunked parquet/mp4 holding many episodes)
  rlds        RLDS / Open-X-Embodiment through tfds.builder_from_directory, no TensorFlow
  actionless  videos + language without actions (action_mask zeros, pseudo-action slot)
  stats       streaming statistics (exact quantiles), mixture merge, metadata.json
  rotation    rotation conversions (pytorch3d conventions) in numpy
  normalize   min_max / q99 / mean_std / binary normalizers with inverses
  transforms  video crop/resize/jitter, state/action transform, concat, padding, inverse path
  prompt      Eagle chat template, image-token expansion, tokenization and left padding
  mixture     weighted mixture specification and merged statistics
  pipeline    Grain pipelines: mixture, shuffle, process sharding, batching, workers, state
  cli         `groot-jax stats` and `groot-jax data inspect`
"""
