"""Simulators the project records demonstrations in and evaluates policies in closed loop.

Knows no model: `metaworld` wraps Meta-World tasks (observations in the original's key style,
scripted experts), `record` writes expert episodes as a LeRobot v3.0 dataset. Closed-loop
evaluation of a policy lives in `groot_jax.eval.closed_loop`.
"""
