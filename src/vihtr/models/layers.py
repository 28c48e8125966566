"""Attention building blocks shared by the encoder and the transformer decoder.

Written on `F.scaled_dot_product_attention` rather than `nn.MultiheadAttention` for two reasons: the
decoder needs keys/values it can cache and extend one token at a time, and the encoder must export to
ONNX with the dynamo exporter, which the fused fast path of the stock layers gets in the way of.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sinusoidal_positions(length: int | torch.Tensor, dim: int, device=None, offset: int = 0) -> torch.Tensor:
    """The fixed sine/cosine position table (length x dim), computed on the fly so any length works."""
    position = torch.arange(length, device=device, dtype=torch.float32) + offset
    inv_freq = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim)
    )
    angles = position[:, None] * inv_freq[None, :]
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)


class MultiHeadAttention(nn.Module):
    """Multi-head attention whose key/value projection can be computed once and reused (cache)."""

    def __init__(self, d_model: int, nhead: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % nhead:
            raise ValueError(f"d_model {d_model} is not divisible by nhead {nhead}")
        self.nhead = nhead
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, d_model)
        self.kv_proj = nn.Linear(d_model, 2 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        return x.view(b, t, self.nhead, d // self.nhead).transpose(1, 2)

    def project_kv(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """B x S x d -> keys and values, each B x heads x S x d_head."""
        k, v = self.kv_proj(source).chunk(2, dim=-1)
        return self._split_heads(k), self._split_heads(v)

    def attend(
        self,
        query: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        """query B x L x d over cached k/v; `attn_mask` is boolean, True where a key may be attended."""
        q = self._split_heads(self.q_proj(query))
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal,
        )
        b, h, t, dh = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, t, h * dh))

    def forward(
        self,
        query: torch.Tensor,
        source: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        k, v = self.project_kv(source)
        return self.attend(query, k, v, attn_mask, is_causal)


class FeedForward(nn.Sequential):
    def __init__(self, d_model: int, ffn_dim: int, dropout: float) -> None:
        super().__init__(
            nn.Linear(d_model, ffn_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, d_model)
        )


def key_padding_to_attn_mask(padding_mask: torch.Tensor) -> torch.Tensor:
    """B x S padding mask (True = padding) -> B x 1 x 1 x S attention mask (True = may attend)."""
    return (~padding_mask)[:, None, None, :]


class EncoderLayer(nn.Module):
    """Pre-norm transformer encoder layer (self-attention over the image columns)."""

    def __init__(self, d_model: int, nhead: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, nhead, dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, ffn_dim, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.drop(self.attn(h, h, attn_mask))
        return x + self.drop(self.ffn(self.norm2(x)))


def reverse_within_lengths(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row of B x T x d over its first lengths[b] steps; padding stays at the end.

    A gather, not packed sequences: it exports to ONNX, and it is its own inverse."""
    t = torch.arange(x.shape[1], device=x.device)[None, :]
    lengths = lengths.to(x.device)[:, None]
    index = torch.where(t < lengths, lengths - 1 - t, t)
    return x.gather(1, index[:, :, None].expand(-1, -1, x.shape[2]))


class BiLSTMLayer(nn.Module):
    """A bidirectional LSTM over the image columns, with a residual connection.

    Both directions run as forward LSTMs, the backward one on each row reversed within its length, so
    padding always comes after the real columns and never reaches them: a line reads the same alone or
    padded in a batch of wider lines."""

    def __init__(self, d_model: int, dropout: float) -> None:
        super().__init__()
        if d_model % 2:
            raise ValueError(f"a BiLSTM layer needs an even d_model, got {d_model}")
        self.forward_lstm = nn.LSTM(d_model, d_model // 2, batch_first=True)
        self.backward_lstm = nn.LSTM(d_model, d_model // 2, batch_first=True)
        self.norm = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        fwd, _ = self.forward_lstm(h)
        bwd, _ = self.backward_lstm(reverse_within_lengths(h, lengths))
        return x + self.drop(torch.cat([fwd, reverse_within_lengths(bwd, lengths)], dim=-1))
