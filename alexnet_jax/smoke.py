"""A forward/backward smoke run: the whole net, its loss and its gradients, on synthetic data.

Until the training loop lands (issue 4) this is what `main.py` runs: `config.smoke_steps`
steps of SGD with momentum and weight decay (Sec. 5's constants from `config.optim`) on one
fixed random batch of `config.input.global_batch_size` images, dropout on. The loss must fall.
"""

import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import optax

from alexnet_jax import models


def run(config: ml_collections.ConfigDict, workdir: str) -> list[float]:
    """Runs the smoke steps, prints a progress line per step, returns the losses."""
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=2))
    model = models.create_model(config)
    init_key, data_key, dropout_key = jax.random.split(jax.random.key(config.seed), 3)
    params = models.init_params(model, config, init_key)
    batch = config.input.global_batch_size
    images = jax.random.normal(data_key, models.input_shape(config, batch))
    labels = jax.random.randint(data_key, (batch,), 0, config.model.num_classes)
    o = config.optim
    tx = optax.chain(optax.add_decayed_weights(o.weight_decay), optax.sgd(o.base_lr, o.momentum))
    print(f"{models.count_params(params):,} parameters; {jax.device_count()} x {jax.devices()[0]}")

    def step(params, opt_state, key):
        def loss_fn(p):
            logits = model.apply({"params": p}, images, train=True, rngs={"dropout": key})
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    step = jax.jit(step, donate_argnums=(0, 1))
    opt_state, losses = tx.init(params), []
    for i in range(config.smoke_steps):
        t = time.perf_counter()
        params, opt_state, loss = step(params, opt_state, jax.random.fold_in(dropout_key, i))
        losses.append(float(loss))
        dt = time.perf_counter() - t
        print(
            f"step {i + 1}/{config.smoke_steps}  loss {losses[-1]:.4f}  {batch / dt:.1f} images/s"
        )
    if not all(jnp.isfinite(jnp.asarray(losses))):
        raise FloatingPointError(f"non-finite loss in the smoke run: {losses}")
    return losses
