"""Learning from action-less video: latent-action VQ-VAE and inverse-dynamics pseudo-labels.

Layout: `synthetic_world` (numpy video worlds with known actions), `episodes` (the episode
interface, pair sampling, and the adapter over groot_jax.data sources: LeRobot and action-less
video), `lerobot_writer` (write episodes as LeRobot v2.1 / action-less datasets), `train_lam` /
`train_idm` (small optax loops), `checkpoint` (Orbax), `sidecar` (atomic, resumable per-episode
label files beside a dataset; groot_jax/data/sidecar_actions.py reads them back as actions),
`label` (labelling loops), `cli` (`latent-actions` and `idm` sub-commands). The pyramid mixture
that trains on the labels is groot_jax/train/pyramid.py.
"""
