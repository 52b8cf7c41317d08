"""Flow-matching action head (lerobot 0.5.1 / Isaac-GR00T `flow_matching_action_head.py`).

Flow time follows GR00T: t = 0 is pure noise, t = 1 is data (the opposite of openpi).
  vl  = vl_self_attention(vlln(backbone_features))                  (N1.5; identity for N1)
  sa  = [state_encoder(state) | future_tokens | action_encoder(x_t, bucket) + pos]   [B, 1+F+H, E]
  v   = action_decoder(DiT(sa, vl, bucket))[:, -H:]
Per-embodiment layers hold one weight matrix per embodiment id ([K, in, out], spec 4.1).

GR00T N1.7 (lerobot 0.6.1 `GR00TN17ActionHead`, `ActionHeadConfig.n1_7`) is the same head with
no future tokens, the text/image alternating DiT (which takes the backbone's attention_mask and
image_mask, `DiTConfig.attend_text_every_n_blocks`), t = (1 - u) * s (`time_sampling`), a 1e-6
in the loss denominator (`loss_eps`) and training-time state dropout (`state_dropout_prob`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

from groot_jax.config import ActionHeadConfig
from groot_jax.models.dit import DiT, SelfAttentionTransformer
from groot_jax.models.layers import Dense, LayerNorm, is_unrolled, param, transpose_dense

category_init = nnx.initializers.normal(0.02)


class CategorySpecificLinear(nnx.Module):
    """y = x @ W[id] + b[id], W stored [K, in, out] exactly as in the torch checkpoint."""

    def __init__(self, num_categories: int, in_dim: int, out_dim: int, *, rngs: nnx.Rngs):
        self.W = param(rngs, category_init, (num_categories, in_dim, out_dim),
                       ("embodiment", None, None))
        self.b = param(rngs, nnx.initializers.zeros, (num_categories, out_dim), ("embodiment", None))

    def __call__(self, x: Float[Array, "b t i"], ids: Int[Array, " b"]) -> Float[Array, "b t o"]:
        w = jnp.take(self.W[...], ids, axis=0).astype(x.dtype)
        b = jnp.take(self.b[...], ids, axis=0).astype(x.dtype)
        return jnp.einsum("bti,bio->bto", x, w) + b[:, None]


class CategorySpecificMLP(nnx.Module):
    def __init__(self, num_categories: int, in_dim: int, hidden: int, out_dim: int, *,
                 rngs: nnx.Rngs):
        self.layer1 = CategorySpecificLinear(num_categories, in_dim, hidden, rngs=rngs)
        self.layer2 = CategorySpecificLinear(num_categories, hidden, out_dim, rngs=rngs)

    def __call__(self, x, ids):
        return self.layer2(jax.nn.relu(self.layer1(x, ids)), ids)


def action_sinusoid(buckets: Float[Array, "b t"], dim: int) -> Float[Array, "b t d"]:
    """The action encoder's encoding: sin first, frequencies exp(-j * ln(1e4) / half)."""
    half = dim // 2
    freqs = jnp.exp(-jnp.arange(half, dtype=jnp.float32) * (jnp.log(10000.0) / half))
    args = buckets.astype(jnp.float32)[..., None] * freqs
    return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)


class MultiEmbodimentActionEncoder(nnx.Module):
    def __init__(self, action_dim: int, width: int, num_embodiments: int, *, rngs: nnx.Rngs):
        self.width = width
        self.W1 = CategorySpecificLinear(num_embodiments, action_dim, width, rngs=rngs)
        self.W2 = CategorySpecificLinear(num_embodiments, 2 * width, width, rngs=rngs)
        self.W3 = CategorySpecificLinear(num_embodiments, width, width, rngs=rngs)

    def __call__(self, actions: Float[Array, "b h a"], buckets: Int[Array, " b"], ids):
        a_emb = self.W1(actions, ids)
        tau = jnp.broadcast_to(buckets[:, None], actions.shape[:2])
        tau_emb = action_sinusoid(tau, self.width).astype(a_emb.dtype)
        x = self.W2(jnp.concatenate([a_emb, tau_emb], axis=-1), ids)
        return self.W3(jax.nn.swish(x), ids)


class FlowMatchingActionHead(nnx.Module):
    def __init__(self, cfg: ActionHeadConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        e, k = cfg.input_embedding_dim, cfg.max_num_embodiments
        self.model = DiT(cfg.dit, rngs=rngs)
        self.state_encoder = CategorySpecificMLP(k, cfg.max_state_dim, cfg.hidden_size, e, rngs=rngs)
        self.action_encoder = MultiEmbodimentActionEncoder(cfg.action_dim, e, k, rngs=rngs)
        self.action_decoder = CategorySpecificMLP(k, cfg.hidden_size, cfg.hidden_size,
                                                  cfg.action_dim, rngs=rngs)
        self.future_tokens = (param(rngs, nnx.initializers.normal(0.02),
                                    (cfg.num_future_tokens, e), (None, "embed"))
                              if cfg.num_future_tokens else None)
        if cfg.use_vlln:
            self.vlln = LayerNorm(cfg.backbone_embedding_dim, eps=1e-5, rngs=rngs)
            self.vl_self_attention = SelfAttentionTransformer(cfg.vl_self_attention, rngs=rngs)
        else:
            self.vlln = self.vl_self_attention = None
        self.position_embedding = (param(rngs, nnx.initializers.normal(0.02),
                                         (cfg.max_seq_len, e), (None, "embed"))
                                   if cfg.add_pos_embed else None)
        self.flare_projector = FlareProjector(cfg, rngs=rngs) if cfg.flare.enabled else None

    def process_backbone_output(self, features: Float[Array, "b l d"], rng=None):
        if self.vlln is None:
            return features
        return self.vl_self_attention(self.vlln(features), rng)

    def velocity(self, state_features, x_t, buckets, ids, *, vl=None, cross_kv=None, rng=None,
                 attention_mask=None, image_mask=None, return_future_states: bool = False):
        """Predicted velocity [B, H, A] for noisy actions x_t at integer `buckets` [B]; with
        `return_future_states`, also the future tokens' states after DiT block `flare_layer`.
        `attention_mask`/`image_mask` [B, L] (bool): the VL tokens' masks, for the alternating
        (N1.7) DiT only."""
        masks = dict(attention_mask=attention_mask, image_mask=image_mask)
        b = x_t.shape[0]
        action_features = self.action_encoder(x_t, buckets, ids)
        if self.position_embedding is not None:
            action_features = action_features + self.position_embedding[:x_t.shape[1]].astype(
                action_features.dtype)[None]
        parts = [state_features]
        if self.future_tokens is not None:
            ft = self.future_tokens[...].astype(action_features.dtype)
            parts.append(jnp.broadcast_to(ft[None], (b, *ft.shape)))
        parts.append(action_features)
        tokens = jnp.concatenate(parts, axis=1)
        if not return_future_states:
            out = self.model(tokens, buckets, vl=vl, cross_kv=cross_kv, rng=rng, **masks)
            return self.action_decoder(out, ids)[:, -x_t.shape[1]:]
        out, per_block = self.model(tokens, buckets, vl=vl, cross_kv=cross_kv, rng=rng,
                                    return_hidden_states=True, **masks)
        m = self.cfg.num_future_tokens
        future = per_block[self.cfg.flare_layer][:, 1:1 + m]  # after the state token
        return self.action_decoder(out, ids)[:, -x_t.shape[1]:], future

    def sample_time(self, rng, batch: int) -> Float[Array, " b"]:
        """u ~ Beta(alpha, beta), mass near t = 0 (noisy); `time_sampling` "n1_5":
        t = (noise_s - u) / noise_s (in (-0.001, 1]); "n1_7": t = (1 - u) * noise_s (in
        [0, 0.999])."""
        cfg = self.cfg
        s = jax.random.beta(rng, cfg.noise_beta_alpha, cfg.noise_beta_beta, (batch,))
        if cfg.time_sampling == "n1_7":
            return (1 - s) * cfg.noise_s
        return (cfg.noise_s - s) / cfg.noise_s

    def flow_matching_loss(self, features, state, actions, action_mask, ids, *, noise, t,
                           rng=None, return_velocity: bool = False, future_embeddings=None,
                           future_mask=None, return_terms: bool = False, attention_mask=None,
                           image_mask=None):
        """Masked MSE between predicted and target velocity (spec 5), for given noise and t,
        plus the FLARE term when enabled and `future_embeddings` [B, M, D_t] are given.

        features [B, L, D]; state [B, 1, S]; actions, action_mask, noise [B, H, A]; t [B];
        future_mask [B] marks samples whose future observation exists; attention_mask,
        image_mask [B, L] the VL tokens' masks (alternating DiT only). A batch whose action
        mask is all zero (action-less video) has a flow-matching term of 0, not 0/0. `rng`
        (training) drives dropout and, with `state_dropout_prob`, the state dropout."""
        masks = dict(attention_mask=attention_mask, image_mask=image_mask)
        r_state = None
        if rng is not None and self.cfg.state_dropout_prob > 0:
            rng, r_state = jax.random.split(rng)
        r_vl, r_dit = (None, None) if rng is None else jax.random.split(rng)
        vl = self.process_backbone_output(features, r_vl)
        state_features = self.state_encoder(state, ids)
        if r_state is not None:
            # lerobot 0.6.1: the whole state token of a sample is zeroed (no rescaling).
            drop = jax.random.uniform(r_state, (state.shape[0],)) < self.cfg.state_dropout_prob
            state_features = state_features * (1 - drop.astype(state_features.dtype))[:, None,
                                                                                       None]
        t3 = t[:, None, None].astype(actions.dtype)
        x_t = (1 - t3) * noise + t3 * actions
        target = actions - noise
        # Truncation toward zero, as torch's .long() does.
        buckets = (t * self.cfg.num_timestep_buckets).astype(jnp.int32)
        use_flare = self.flare_projector is not None and future_embeddings is not None
        if use_flare:
            pred, future = self.velocity(state_features, x_t, buckets, ids, vl=vl, rng=r_dit,
                                         return_future_states=True, **masks)
        else:
            pred = self.velocity(state_features, x_t, buckets, ids, vl=vl, rng=r_dit, **masks)
        mask = action_mask.astype(pred.dtype)
        sq = jnp.square(pred.astype(jnp.float32) - target.astype(jnp.float32)) * mask
        total = mask.sum()
        # == sum / (total + loss_eps) whenever total > 0
        fm = sq.sum() / jnp.where(total > 0, total + self.cfg.loss_eps, 1.0)
        loss, terms = fm, {"flow_matching": fm}
        if use_flare:
            align = self.flare_projector.alignment_loss(future, future_embeddings, future_mask)
            loss = fm + self.cfg.flare.weight * align
            terms["flare_alignment"] = align
        if return_terms:
            return loss, terms
        return (loss, pred) if return_velocity else loss

    def to_inference_layout(self, release: bool = False) -> None:
        """Lay the weights out for the sampler, once, outside jit (`layers.
        unstack_for_inference`): the DiT and VL self-attention blocks one module each, every
        Dense kernel [out, in]; `sample` then runs its blocks and Euler steps unrolled. Same
        numbers. `release` empties the stacked originals (one copy of the weights in memory)."""
        self.model.unroll(release)
        if self.vl_self_attention is not None:
            self.vl_self_attention.unroll(release)
        transpose_dense(self)

    def sample(self, features, state, ids, noise, *, num_steps: int | None = None,
               cache_cross_kv: bool = True, attention_mask=None, image_mask=None):
        """Euler integration from `noise` [B, H, A] over `num_steps` (default 4) steps with
        buckets int(k / N * 1000). The VL tokens' K/V are projected once when cache_cross_kv
        (the key masks of the alternating DiT, from `attention_mask`/`image_mask` [B, L],
        apply to the cached K/V as to fresh ones). In the inference layout
        (`to_inference_layout`) the Euler steps are unrolled too."""
        masks = dict(attention_mask=attention_mask, image_mask=image_mask)
        n = num_steps or self.cfg.num_inference_timesteps
        vl = self.process_backbone_output(features)
        state_features = self.state_encoder(state, ids)
        dt = 1.0 / n
        kv = self.model.cross_kv(vl) if cache_cross_kv else None
        # Buckets exactly as the original computes them in Python floats: int(k / N * 1000).
        buckets = [int(k / float(n) * self.cfg.num_timestep_buckets) for k in range(n)]

        def euler_step(x, bucket):
            v = self.velocity(state_features, x, jnp.full((x.shape[0],), bucket, jnp.int32), ids,
                              vl=None if cache_cross_kv else vl, cross_kv=kv, **masks)
            return x + dt * v, None

        if is_unrolled(self.model.cross_blocks):
            # A scan over steps would hand the per-block weights to a loop body once more;
            # unrolled, every step reads the same arrays.
            x = noise
            for bucket in buckets:
                x, _ = euler_step(x, bucket)
            return x
        x, _ = jax.lax.scan(euler_step, noise, jnp.asarray(buckets, dtype=jnp.int32))
        return x


class FlareProjector(nnx.Module):
    """FLARE's MLP from future-token states (DiT width) to the target embedding width, and the
    cosine alignment loss. Not part of the GR00T checkpoint layout."""

    def __init__(self, cfg: ActionHeadConfig, *, rngs: nnx.Rngs):
        e = cfg.input_embedding_dim
        hidden = cfg.flare.projector_hidden or e
        self.fc1 = Dense(e, hidden, rngs=rngs, axes=("embed", "mlp"))
        self.fc2 = Dense(hidden, cfg.flare.target_dim or cfg.backbone_embedding_dim, rngs=rngs,
                         axes=("mlp", "embed"))

    def __call__(self, x):
        return self.fc2(jax.nn.gelu(self.fc1(x), approximate=True))

    def alignment_loss(self, future_states, targets, sample_mask=None):
        """mean over samples (with a future) and tokens of 1 - cos(proj(state), target);
        targets are constants (no gradient into the encoder that made them)."""
        pred = self(future_states).astype(jnp.float32)
        tgt = jax.lax.stop_gradient(targets).astype(jnp.float32)
        cos = jnp.sum(pred * tgt, -1) / (jnp.linalg.norm(pred, axis=-1) *
                                         jnp.linalg.norm(tgt, axis=-1) + 1e-6)
        per_sample = jnp.mean(1.0 - cos, axis=-1)
        if sample_mask is None:
            return per_sample.mean()
        w = sample_mask.astype(jnp.float32)
        return jnp.sum(per_sample * w) / jnp.maximum(w.sum(), 1.0)


def pool_tokens(features, mask, num_out: int):
    """Masked mean of [B, L, D] features over `num_out` contiguous groups of positions:
    [B, num_out, D] (the default FLARE target: VLM features of the future frame)."""
    length = features.shape[1]
    group = (jnp.arange(length) * num_out) // length
    onehot = jax.nn.one_hot(group, num_out, dtype=jnp.float32)
    w = mask.astype(jnp.float32)[..., None] * onehot[None]          # [B, L, M]
    summed = jnp.einsum("blm,bld->bmd", w, features.astype(jnp.float32))
    return summed / jnp.maximum(w.sum(1)[..., None], 1.0)
