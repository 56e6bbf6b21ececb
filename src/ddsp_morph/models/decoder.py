from __future__ import annotations

import torch
from torch import nn

from ddsp_morph.models.gru import gru_scan, wants_scan


def mlp(in_size: int, hidden_size: int, n_layers: int) -> nn.Sequential:
    """Dense -> LayerNorm -> LeakyReLU, ``n_layers`` times (the DDSP MLP). The activation runs
    in place on the LayerNorm's output (LayerNorm's backward does not need its output): one
    activation tensor less per layer held for the backward pass."""
    layers: list[nn.Module] = []
    for i in range(n_layers):
        layers += [
            nn.Linear(in_size if i == 0 else hidden_size, hidden_size),
            nn.LayerNorm(hidden_size),
            nn.LeakyReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


Z_MODES = ("concat", "film")


class Decoder(nn.Module):
    """The DDSP decoder: one MLP per input -> GRU -> MLP -> one linear head per synth control.

    Args:
        input_sizes: name -> channels of each conditioning input ("z": the timbre latent).
        output_sizes: name -> channels of each head (from ``SynthStack.control_sizes``).
        z_mode: how z reaches the decoder. "concat": as one more input (its MLP, concatenated
            with the others: the decoder may learn to ignore it). "film": that, plus z
            modulating every layer of the output MLP (FiLM after each LayerNorm:
            y * (1 + gamma(z)) + beta(z)) and a timbre path straight to the heads
            (head outputs + T z); both are affine in z and start at zero, so a straight path
            in z moves the decoder's timbre evenly, and z can set the harmonic distribution
            and the noise filter without going through the GRU.
    """

    def __init__(
        self,
        *,
        input_sizes: dict[str, int],
        output_sizes: dict[str, int],
        hidden_size: int = 512,
        gru_size: int = 512,
        n_mlp_layers: int = 3,
        z_mode: str = "concat",
    ) -> None:
        super().__init__()
        if z_mode not in Z_MODES:
            raise ValueError(f"z_mode: expected one of {list(Z_MODES)}, got {z_mode!r}")
        self.input_names = list(input_sizes)
        self.input_mlps = nn.ModuleDict(
            {k: mlp(v, hidden_size, n_mlp_layers) for k, v in input_sizes.items()}
        )
        n_in = hidden_size * len(input_sizes)
        self.gru = nn.GRU(n_in, gru_size, batch_first=True)
        self.out_mlp = mlp(gru_size + n_in, hidden_size, n_mlp_layers)
        self.output_sizes = dict(output_sizes)
        self.head = nn.Linear(hidden_size, sum(output_sizes.values()))
        self.z_mode = z_mode if "z" in input_sizes else "concat"
        self.film: nn.Linear | None = None
        self.timbre: nn.Linear | None = None
        if self.z_mode == "film":
            z_dim = input_sizes["z"]
            self.film = nn.Linear(z_dim, 2 * hidden_size * n_mlp_layers)
            self.timbre = nn.Linear(z_dim, sum(output_sizes.values()))
            for lin in (self.film, self.timbre):
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)

    def film_params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The z-dependent parts of the "film" decoder: (gamma, beta) Shape [..., n_layers,
        hidden] for the output MLP's LayerNorms, and the heads' offset Shape [..., n_heads]."""
        assert self.film is not None and self.timbre is not None
        gb = self.film(z)
        n_layers = len(self.out_mlp) // 3
        gb = gb.reshape(*z.shape[:-1], 2, n_layers, -1)
        return gb[..., 0, :, :], gb[..., 1, :, :], self.timbre(z)

    def _out_mlp(
        self, x: torch.Tensor | None, z: torch.Tensor | None, first: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The output MLP and heads on ``x``, or from ``first``: its first Linear's output."""
        mods = list(self.out_mlp)
        if self.film is None or z is None:
            if first is None:
                return self.head(self.out_mlp(x))
            for m in mods[1:]:
                first = m(first)
            return self.head(first)
        like = x if first is None else first
        gamma, beta, offset = self.film_params(z.to(like.dtype) if z.dtype != like.dtype else z)
        for i, (lin, ln, act) in enumerate(zip(mods[0::3], mods[1::3], mods[2::3], strict=True)):
            y = first if i == 0 and first is not None else lin(x)
            x = act(ln(y) * (1.0 + gamma[..., i, :]) + beta[..., i, :])
        return self.head(x) + offset

    def forward(
        self,
        inputs: dict[str, torch.Tensor],
        hidden: torch.Tensor | None = None,
        return_hidden: bool = False,
    ):
        """Args: inputs name -> Shape [batch, n_frames, channels]. An input that holds over every
        frame (given with one frame, or expanded over them: a clip's pooled z) goes through its
        MLP once per clip, not once per frame. An input with fewer rows than the largest is
        tiled to it (rows repeated as ``Tensor.repeat``): the same performance played with
        several z in one pass, its MLP run once. Returns name -> raw head outputs."""
        missing = [k for k in self.input_names if k not in inputs]
        if missing:
            raise ValueError(
                f"inputs: missing {missing}; the decoder was built for {self.input_names}"
            )
        given = {k: held_over_frames(inputs[k]) for k in self.input_names}
        rows = max(v.shape[0] for v in given.values())
        frames = max(v.shape[1] for v in given.values())
        for k, v in given.items():
            if rows % v.shape[0] or v.shape[1] not in (1, frames):
                raise ValueError(
                    f"inputs: {k} has {v.shape[0]} rows x {v.shape[1]} frames; expected rows "
                    f"dividing {rows} and 1 or {frames} frames"
                )
        own = [self.input_mlps[k](v) for k, v in given.items()]  # each its own rows, frames
        z = given.get("z")
        z = None if z is None else _tile(z, rows)
        if wants_scan(self.gru, own[0]):
            # Training: the GRU's input projection and the output MLP's first layer, which read
            # the inputs' concatenation, are summed input by input, each projected on its own
            # rows and frames (a clip's z once per clip, a performance played with several z
            # once): the same sums, without the per-frame copies of held inputs.
            sizes = [h.shape[-1] for h in own]
            gx = self.gru.bias_ih_l0 + _projections(own, self.gru.weight_ih_l0, sizes, rows)
            g, hidden = gru_scan(self.gru, gx.expand(rows, frames, -1), hidden)
            lin = self.out_mlp[0]
            w_g, w_in = lin.weight.split([g.shape[-1], sum(sizes)], dim=1)
            first = nn.functional.linear(g, w_g, lin.bias) + _projections(own, w_in, sizes, rows)
            y = self._out_mlp(None, z, first)
        else:
            x = torch.cat([_tile(h, rows).expand(-1, frames, -1) for h in own], dim=-1)
            if torch.is_autocast_enabled(x.device.type) and not torch.is_grad_enabled():
                # Validation under bf16 autocast: torch's CPU GRU in inference mode took 2.3 GB
                # more for a batch of 8 x 4 s (measured); without gradients float32 costs little.
                with torch.autocast(x.device.type, enabled=False):
                    g, hidden = self.gru(x.float(), None if hidden is None else hidden.float())
            else:
                g, hidden = self.gru(x, hidden)
            y = self._out_mlp(torch.cat([g, x], dim=-1), z)
        out = dict(
            zip(
                self.output_sizes,
                torch.split(y, list(self.output_sizes.values()), dim=-1),
                strict=True,
            )
        )
        return (out, hidden) if return_hidden else out


def held_over_frames(v: torch.Tensor) -> torch.Tensor:
    """An input expanded over its frames (stride 0) as its one frame, else itself."""
    return v[:, :1] if v.dim() == 3 and v.shape[1] > 1 and v.stride(1) == 0 else v


def _projections(
    hs: list[torch.Tensor], weight: torch.Tensor, sizes: list[int], rows: int
) -> torch.Tensor:
    """sum_k hs[k] @ W_k.T over the column blocks W_k of ``weight`` (``sizes`` wide): the product
    of the inputs' concatenation, each input on its own rows (tiled to ``rows``) and frames
    (1 broadcasts). Shape [rows, frames or 1, weight rows]."""
    blocks = weight.split(sizes, dim=1)
    return sum(_tile(nn.functional.linear(h, w), rows) for h, w in zip(hs, blocks, strict=True))


def _tile(v: torch.Tensor, rows: int) -> torch.Tensor:
    return v if v.shape[0] == rows else v.repeat(rows // v.shape[0], *[1] * (v.dim() - 1))
