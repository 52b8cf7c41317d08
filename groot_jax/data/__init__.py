"""Data layer: LeRobot v2.1/v3.0, RLDS and action-less sources, GR00T transforms, Grain pipelines.

It imports no model, trainer or latent-action code (groot_jax.models / train / latent build on it).

Module map (one job each):
  errors           DataError, the one exception type this package raises for bad input
  video            PyAV decoding at exact timestamps with a per-process decoder cache; write_video
  yuv_tables       swscale's yuv420p -> RGB conversion tabulated for the accelerator
  modality         modality.json parsing, ModalityConfig / DataConfig, delta indices, edge padding
  embodiments      embodiment tag -> projector id, presets of the original's data configs
  source           the episode source: the shared base of all readers (random access by
                   (episode, frame) -> raw sample)
  lerobot_v2       LeRobot v2.0/v2.1, GR00T flavour (per-episode parquet and mp4)
  lerobot_v3       LeRobot v3.0 (chunked parquet/mp4 holding many episodes)
  rlds             RLDS / Open-X-Embodiment through tfds.builder_from_directory, no TensorFlow
  actionless       videos + language without actions (action_mask zeros, pseudo-action slot)
  sidecar          label sidecars beside a dataset: format and the sha256-checked reader
  sidecar_actions  a source whose actions come from a label sidecar (latent / IDM actions)
  writers          the writers of LeRobot v2.1 and action-less datasets (synthetic data, fixtures)
  episodes         whole episodes as arrays (a source viewed whole, episode_*.npz); open_episodes
  stats            streaming statistics (exact quantiles), mixture merge, metadata.json
  rotation         rotation conversions (pytorch3d conventions) in numpy
  normalize        min_max / q99 / mean_std / binary normalizers with inverses
  image_transforms host video kernels bit-exact to torchvision: crop, antialiased resize, jitter
  device_inputs    host halves of on-device augmentation and YUV transport (crops + draws)
  device_augment   the accelerator halves (JAX): resize / jitter / normalize, yuv420p -> RGB
  codec            state/action codec: rotation, normalization, padding, encoded episodes, inverse
  prompt           Eagle chat template, image-token expansion, tokenization and left padding
  processor        SampleTransform (raw sample -> model input) + Collate (samples -> batch)
  draws            cheap per-sample random draws keyed by (seed, batch position)
  shm_ring         reused shared-memory slots for batches from worker processes
  mixture          SourceSpec, open_source (kind -> reader), merged statistics of a mixture
  pipeline         Grain pipelines: mixture, shuffle, process sharding, batching, workers, state
  cli              `groot-jax stats` and `groot-jax data inspect`
"""
