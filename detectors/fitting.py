"""Fitting one backbone: the epochs, early stopping on validation log loss, and the members' average.

Used by ``training.train`` for each member (seed) of a detector; nothing here reads images or writes bundles.
"""
from __future__ import annotations

import time

import numpy as np

from . import backbones
from .inference import accelerated, predict
from .synthesis import TrainingBatches


def use_gpu_if_available() -> str:
    """'gpu (mixed precision)' when the Keras backend sees a GPU (and sets mixed precision), else 'cpu'."""
    import keras

    if accelerated():
        keras.mixed_precision.set_global_policy("mixed_float16")
        return "gpu (mixed precision)"
    return "cpu"


def improves(state: dict, auc: float, loss: float) -> bool:
    """Whether an epoch with validation ``auc`` and log ``loss`` beats the best so far: lower loss, AUC only
    breaking a tie. Not AUC first: on a synthesised or small validation split it saturates at 1.0 in the first
    epoch (a gate's 11 positives), after which no epoch can beat a barely trained model, which was then kept
    (docs/decisions/0015). Log loss keeps falling while the scores still become more certain."""
    if loss < state["best_loss"] - 1e-6:
        return True
    return abs(loss - state["best_loss"]) <= 1e-6 and auc > state["best_auc"] + 1e-6


class _BestOnValidationLoss:
    """Keras callback factory: per-epoch validation line, early stopping, keeps the best epoch's weights."""

    def __new__(cls, val_x, val_y, patience, log, batch_size, phase, state, batches=None):
        import keras
        from sklearn.metrics import log_loss, roc_auc_score

        class _Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                if batches is not None:
                    backbones.recalibrate_batchnorm(self.model, batches)
                scores = predict(self.model, val_x, batch_size, frozen=False).astype(np.float64)  # live weights
                auc = float(roc_auc_score(val_y, scores))
                loss = float(log_loss(val_y, np.clip(scores, 1e-7, 1 - 1e-7), labels=[0, 1]))
                acc = float(((scores >= 0.5) == (val_y == 1)).mean())
                state["epoch"] += 1
                record = {
                    "epoch": state["epoch"], "phase": phase, "loss": float((logs or {}).get("loss", np.nan)),
                    "val_auc": auc, "val_loss": loss, "val_accuracy_at_0.5": acc,
                    "seconds": round(time.perf_counter() - self.t0, 1),
                }
                state["history"].append(record)
                better = improves(state, auc, loss)
                if better:
                    state.update(best_auc=auc, best_loss=loss, best_epoch=state["epoch"], wait=0)
                    state["weights"] = [w.copy() for w in self.model.get_weights()]
                else:
                    state["wait"] += 1
                    if state["wait"] % 2 == 0:  # plateau: halve the learning rate, then keep going
                        lr = self.model.optimizer.learning_rate
                        lr.assign(float(np.asarray(lr)) * 0.5)
                        log(f"validation loss flat for 2 epochs: learning rate halved to {float(np.asarray(lr)):.2e}")
                log(
                    f"epoch {state['epoch']:3d} [{phase}] loss {record['loss']:.4f}  val AUC {auc:.4f}  "
                    f"val loss {loss:.4f}  val acc@0.5 {acc:.3f}  {record['seconds']:.1f} s" + ("  *best" if better else "")
                )
                if state["wait"] >= patience:
                    log(f"early stop: validation loss has not improved for {patience} epoch(s)")
                    self.model.stop_training = True

        return _Callback()


def fit_member(kind, member: int, config, spec, pool: int, weights_path, working: list, labels: list, val_x, val_y,
               device: str, log) -> tuple:
    """Build and train one backbone (seed ``config.seed + member``) on ``working`` images (decoded, at working
    size); returns (model with its best epoch's weights, training state)."""
    import keras

    seed = config.seed + member
    keras.utils.set_random_seed(seed)
    policy = keras.mixed_precision.global_policy().name
    try:
        model, base = backbones.build(config.backbone, config.image_size, weights_path, input_pool=pool)
        if kind.compares_inverse:
            model = backbones.compare_with_inverse(model)
        if kind.compares_mirror:
            model = backbones.compare_with_mirror(model)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    log(f"backbone {config.backbone} ({model.count_params():,} parameters, weights {config.weights or 'none'}) on "
        f"{device} [{policy}]" + (f", member {member + 1}/{config.members} (seed {seed})" if config.members > 1 else ""))
    batches = TrainingBatches(working, labels, kind, spec, config.batch_size, seed, config.copies)
    state = {"epoch": 0, "history": [], "best_auc": -1.0, "best_loss": np.inf, "best_epoch": 0, "wait": 0, "weights": None}

    def fit(n_epochs, lr, phase):
        if n_epochs <= 0:
            return
        model.compile(optimizer=keras.optimizers.Adam(lr), loss="binary_crossentropy")
        callback = _BestOnValidationLoss(val_x, val_y, config.patience, log, config.batch_size, phase, state, batches)
        state["wait"] = 0
        model.fit(batches, epochs=n_epochs, verbose=0, callbacks=[callback])

    if base is not None:  # pretrained: train the head on a frozen backbone first, then fine-tune everything
        head = min(config.head_epochs, config.epochs)
        base.trainable = False
        fit(head, config.learning_rate, "head")
        base.trainable = True
        fit(config.epochs - head, config.learning_rate * 0.1, "fine-tune")
    else:
        fit(config.epochs, config.learning_rate, "train")
    if state["weights"] is not None:
        model.set_weights(state["weights"])
    log(f"best epoch {state['best_epoch']} (validation loss {state['best_loss']:.4f}, AUC {state['best_auc']:.4f}); "
        "kept its weights")
    return model, state


def average_logits(models, name: str = "mean_of_members"):
    """One model whose log-odds are the mean of ``models``' (cxclean backbones: each has a ``logit`` layer)."""
    import keras

    image = keras.Input(models[0].inputs[0].shape[1:], name="image")
    logits = [keras.Model(m.inputs[0], m.get_layer("logit").output, name=f"member_{i}")(image) for i, m in enumerate(models)]
    logit = keras.layers.Average(dtype="float32", name="logit")(logits)
    return keras.Model(image, keras.layers.Activation("sigmoid", dtype="float32", name="score")(logit), name=name)
