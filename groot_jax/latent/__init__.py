"""Learning from action-less video: latent-action VQ-VAE and inverse-dynamics pseudo-labels.

Layout: `synthetic_world` (numpy video worlds with known actions), `pairs` (frame pairs of whole
episodes; the episodes come from groot_jax.data.episodes: LeRobot, action-less video or
episode_*.npz), `train_lam` / `train_idm` (small optax loops on `loop`), `checkpoint` (Orbax),
`sidecar` (the atomic, resumable writer of label files beside a dataset; groot_jax/data/sidecar.py
owns the format and reads them, groot_jax/data/sidecar_actions.py turns them into actions),
`label` (labelling loops), `demo_pyramid` (the synthetic data pyramid with its sidecars), `cli`
(`latent-actions` and `idm` sub-commands). The pyramid that trains on the labels is a data spec
with levels (demo_pyramid.pyramid_data_spec), read by groot_jax/train/input_pipeline.py.
Dependencies: this package uses groot_jax.data, groot_jax.models and the run's data spec
(groot_jax.train.data_spec); groot_jax.data and groot_jax.train import nothing from here.
"""
