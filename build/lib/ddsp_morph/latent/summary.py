"""The latent space of a trained model: a dataset encoded, the instrument centroids and the
principal axes (saved with every checkpoint), and its statistics."""

from __future__ import annotations

import numpy as np
import torch

from ddsp_morph.latent.speeds import path_speeds
from ddsp_morph.models.encoder import kl_per_dim

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. 2016: Var_x(E[z_d | x]) above this is "active"


@torch.no_grad()
def encode_dataset(model, dataset, *, batch_size: int = 16) -> dict[str, np.ndarray]:
    """Posterior statistics of every item of ``dataset`` (whole items, no crop).

    Returns:
        mu [n_items, z_dim] (clip means), instrument_id [n_items], kl_per_dim [z_dim] (VAE,
        averaged over items and frames; absent for ae), var_mean [z_dim] (mean posterior variance).
    """
    was_training = model.training
    model.eval()
    mus, ids, kls, variances, counts = [], [], [], [], []
    items = [dataset.items[i] for i in range(len(dataset))]
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        n_frames = min(int(it["f0_hz"].shape[0]) for it in chunk)
        hop = model.synth.hop_length
        audio = torch.stack([it["audio"][: n_frames * hop] for it in chunk])
        f0 = torch.stack([it["f0_hz"][:n_frames] for it in chunk])
        enc = model.encoder(audio, n_frames, f0)
        mus.append(enc["mu"].mean(dim=1))
        ids.append(torch.stack([it["instrument_id"] for it in chunk]))
        if "logvar" in enc:
            ids_chunk = torch.stack([it["instrument_id"] for it in chunk])
            prior_mean, prior_logvar = model.encoder.prior_params(ids_chunk)
            kls.append(kl_per_dim(enc["mu"], enc["logvar"], prior_mean, prior_logvar) * len(chunk))
            variances.append(
                enc["logvar"].exp().reshape(-1, enc["logvar"].shape[-1]).mean(0) * len(chunk)
            )
        counts.append(len(chunk))
    model.train(was_training)
    out = {
        "mu": torch.cat(mus).numpy(),
        "instrument_id": torch.cat(ids).numpy(),
    }
    if kls:
        out["kl_per_dim"] = (torch.stack(kls).sum(0) / sum(counts)).numpy()
        out["var_mean"] = (torch.stack(variances).sum(0) / sum(counts)).numpy()
    return out


def pca(x: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean [D], components [k, D] (unit rows), std along each component [k])."""
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    k = min(k, vt.shape[0])
    std = s[:k] / np.sqrt(max(1, len(x) - 1))
    return mean, vt[:k], std


def latent_summary(
    model, dataset, instruments: list[str], *, step: int, speeds: bool = True
) -> dict:
    """Per-instrument centroids of the clip-level posterior means over ``dataset``, the first
    two principal axes and (``speeds``) the timbre speed along every centroid path
    (``path_speeds``); plain lists, so a checkpoint holding it loads with weights_only=True."""
    enc = encode_dataset(model, dataset)
    mu, ids = enc["mu"], enc["instrument_id"]
    centroids = {
        instruments[i]: mu[ids == i].mean(axis=0).astype(float).tolist()
        for i in sorted(set(ids.tolist()))
    }
    mean, comps, std = pca(mu)
    out = {
        "step": step,
        "centroids": centroids,
        "pca_mean": mean.astype(float).tolist(),
        "pca_components": comps.astype(float).tolist(),
        "pca_std": std.astype(float).tolist(),
        "n_clips": int(len(mu)),
    }
    if speeds:
        out["path_speed"] = {"slerp": path_speeds(model, dataset, instruments, centroids)}
    return out


def latent_stats(enc: dict[str, np.ndarray]) -> dict[str, float]:
    mu = enc["mu"]
    var_of_mean = mu.var(axis=0)
    stats = {
        "active_units": int((var_of_mean > ACTIVE_UNIT_THRESHOLD).sum()),
        "mu_abs_mean": float(np.abs(mu).mean()),
        "mu_var_across_clips": float(var_of_mean.mean()),
    }
    if "kl_per_dim" in enc:
        stats["kl_total"] = float(enc["kl_per_dim"].sum())
        stats["posterior_var_mean"] = float(enc["var_mean"].mean())
    return stats
