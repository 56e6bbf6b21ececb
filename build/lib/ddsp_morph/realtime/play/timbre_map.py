"""The timbre map of a run as a plane: the latent seen along its first two principal axes, the
instruments at their centroids, and a point of the plane turned back into a z.

Pad coordinates run from -1 to 1 on both axes and hold every centroid (and clip) with a margin.
A point of the plane alone would lose what the centroids hold off the plane, so near an
instrument its centroid's remainder is blended in: on the centroid's spot z is the centroid."""

from __future__ import annotations

import numpy as np

SNAP_RADIUS = 0.12  # pad units: how near a centroid its remainder (and the page's snap) acts


class TimbreMap:
    def __init__(self, latent: dict, clips: np.ndarray | None = None, clip_ids: list | None = None):
        self.names = sorted(latent["centroids"])
        self.centroids = np.asarray([latent["centroids"][n] for n in self.names], np.float64)
        dim = self.centroids.shape[1]
        self.mean = np.asarray(latent.get("pca_mean") or self.centroids.mean(0), np.float64)
        comps = np.zeros((2, dim))
        given = np.asarray(latent.get("pca_components") or [], np.float64).reshape(-1, dim)
        comps[: len(given)] = given[:2]
        self.comps = comps
        plane = self.plane(self.centroids)
        points = plane if clips is None else np.concatenate([plane, self.plane(clips)])
        self.extent = 1.25 * max(float(np.abs(points).max()), 1e-6)
        self.centroid_xy = plane / self.extent
        self.clip_xy = None if clips is None else self.plane(clips) / self.extent
        self.clip_ids = list(clip_ids or [])
        # what each centroid holds off the plane
        self.remainder = self.centroids - (self.mean + plane @ self.comps)

    def plane(self, z: np.ndarray) -> np.ndarray:
        return (np.asarray(z, np.float64) - self.mean) @ self.comps.T

    def z_at(self, x: float, y: float) -> np.ndarray:
        """The z at pad point (x, y): the plane's point, plus each centroid's remainder weighted
        by how near the point is to it (a Gaussian of SNAP_RADIUS)."""
        xy = np.clip(np.array([x, y], np.float64), -1.0, 1.0)
        z = self.mean + (xy * self.extent) @ self.comps
        d2 = ((self.centroid_xy - xy) ** 2).sum(1) / SNAP_RADIUS**2
        w = np.exp(-d2)
        return (z + w @ self.remainder).astype(np.float32)

    def describe(self) -> dict:
        """What the page draws: instruments with their pad positions, the clips as dots."""
        return {
            "instruments": [
                {"name": n, "x": float(p[0]), "y": float(p[1])}
                for n, p in zip(self.names, self.centroid_xy, strict=True)
            ],
            "clips": []
            if self.clip_xy is None
            else [
                {"x": float(p[0]), "y": float(p[1]), "i": int(i)}
                for p, i in zip(self.clip_xy, self.clip_ids, strict=True)
            ],
            "snap": SNAP_RADIUS,
        }
