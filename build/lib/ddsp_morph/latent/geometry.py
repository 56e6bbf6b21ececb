"""Paths through the latent space: from one instrument's centroid to another's (straight or
along the great circle), with alphas spaced evenly in timbre change."""

from __future__ import annotations

import numpy as np

from ddsp_morph.errors import DDSPMorphError


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation of directions, with the norm interpolated linearly."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    ua, ub = a / max(na, 1e-12), b / max(nb, 1e-12)
    omega = np.arccos(np.clip(np.dot(ua, ub), -1.0, 1.0))
    if omega < 1e-6:
        return (1 - t) * a + t * b
    u = (np.sin((1 - t) * omega) * ua + np.sin(t * omega) * ub) / np.sin(omega)
    return u * ((1 - t) * na + t * nb)


def even_alphas(alphas: np.ndarray, speed: list[float] | np.ndarray | None) -> np.ndarray:
    """Where on the path each control value lands when the timbre is to move evenly.

    ``speed``: the path's cumulative timbre change (0 .. 1) at equally spaced alphas (see
    ``latent.speeds.path_speeds``); control value c goes to the alpha where that change is c.
    None: alphas unchanged."""
    alphas = np.asarray(alphas, np.float64)
    if speed is None:
        return alphas
    u = np.maximum.accumulate(np.asarray(speed, np.float64))
    if len(u) < 2 or not np.isfinite(u).all() or u[-1] - u[0] <= 0:
        return alphas
    u = (u - u[0]) / (u[-1] - u[0])
    return np.interp(alphas, u, np.linspace(0.0, 1.0, len(u)))


def path_points(
    a: np.ndarray,
    b: np.ndarray,
    steps: int,
    kind: str = "linear",
    speed: list[float] | np.ndarray | None = None,
) -> np.ndarray:
    """``steps`` points from a to b (``kind`` linear | slerp), equally spaced in alpha, or, with
    a ``speed`` table, equally spaced in timbre change (``even_alphas``)."""
    if steps < 2:
        raise DDSPMorphError(f"steps: need at least 2, got {steps}")
    alphas = even_alphas(np.linspace(0.0, 1.0, steps), speed)
    if kind == "linear":
        return np.stack([(1 - t) * a + t * b for t in alphas])
    if kind == "slerp":
        return np.stack([slerp(a, b, t) for t in alphas])
    raise DDSPMorphError(f"path: expected 'linear' or 'slerp', got {kind!r}")


def chain_points(
    points: list[np.ndarray],
    steps: int,
    kind: str = "linear",
    speeds: list | None = None,
) -> np.ndarray:
    """A path through more than two points (instrument centroids, in order): ``steps`` points
    per segment, the shared vertices once; ``speeds``: one table (or None) per segment.
    Shape [(len(points) - 1) * (steps - 1) + 1, z_dim]."""
    if len(points) < 2:
        raise DDSPMorphError(f"a path needs at least 2 instruments, got {len(points)}")
    speeds = speeds or [None] * (len(points) - 1)
    segs = [
        path_points(a, b, steps, kind, sp)
        for a, b, sp in zip(points[:-1], points[1:], speeds, strict=True)
    ]
    return np.concatenate([segs[0], *[s[1:] for s in segs[1:]]])


def speed_between(latent: dict | None, source: str, target: str, kind: str) -> list | None:
    """The stored timbre-speed table from ``source`` to ``target`` on a ``kind`` path (a run's
    latent summary, ``latent.speeds.path_speeds``: one per ordered pair, measured on the
    source's performances), or None where the run has none."""
    table = ((latent or {}).get("path_speed") or {}).get(kind) or {}
    if f"{source}>{target}" in table:
        return list(table[f"{source}>{target}"])
    if f"{target}>{source}" in table:  # a run that stored one direction: walked backwards
        u = np.asarray(table[f"{target}>{source}"], np.float64)
        return (u[-1] - u[::-1]).tolist()
    return None


def known_centroids(run, *names: str) -> dict[str, np.ndarray]:
    """The run's centroids, after checking that it knows every instrument of ``names``."""
    cents = centroids_of(run)
    for name in names:
        if name not in cents:
            raise DDSPMorphError(
                f"instrument {name!r}: no centroid; this run knows {sorted(cents)}"
            )
    return cents


def centroids_of(run) -> dict[str, np.ndarray]:
    latent = run.extra.get("latent")
    if not latent:
        raise DDSPMorphError(
            f"{run.checkpoint_path}: no latent centroids in this checkpoint (trained with latent=none?)"
        )
    return {k: np.asarray(v, np.float32) for k, v in latent["centroids"].items()}
