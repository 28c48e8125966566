"""Sequence decoders over the encoder memory, the CTC head, and the CTC shortcut that trains the CNN.

Both autoregressive decoders share one API, so greedy and beam search are written once:
- `forward(memory, memory_mask, tgt_in) -> logits B x L x V` (teacher forcing, for training);
- `init_state(memory, memory_mask) -> state` and `step(state, prev_tokens) -> (log_probs B x V, state)`
  (one token at a time, for decoding);
- `reorder_state(state, index)` picks batch rows of a state (beam search expands and reorders beams).
`memory_mask` is True at padded memory positions.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from vihtr.models.layers import (
    FeedForward,
    MultiHeadAttention,
    key_padding_to_attn_mask,
    sinusoidal_positions,
)

State = dict[str, Any]


def index_batch(value: Any, index: torch.Tensor, dim: int = 0) -> Any:
    """Select rows `index` along the batch dimension of every tensor in a nested state."""
    if isinstance(value, torch.Tensor):
        return value.index_select(dim, index)
    if isinstance(value, dict):
        return {k: index_batch(v, index, dim) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(index_batch(v, index, dim) for v in value)
    return value


class DecoderLayer(nn.Module):
    """Pre-norm transformer decoder layer: causal self-attention, cross-attention, feed-forward."""

    def __init__(self, d_model: int, nhead: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, nhead, dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.cross_attn = MultiHeadAttention(d_model, nhead, dropout)
        self.norm3 = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, ffn_dim, dropout)
        self.drop = nn.Dropout(dropout)

    def _cross_and_ffn(self, x: torch.Tensor, mem_k, mem_v, mem_attn_mask) -> torch.Tensor:
        x = x + self.drop(self.cross_attn.attend(self.norm2(x), mem_k, mem_v, mem_attn_mask))
        return x + self.drop(self.ffn(self.norm3(x)))

    def forward(self, x: torch.Tensor, mem_k, mem_v, mem_attn_mask) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.drop(self.self_attn(h, h, is_causal=True))
        return self._cross_and_ffn(x, mem_k, mem_v, mem_attn_mask)

    def step(self, x: torch.Tensor, cache: dict[str, torch.Tensor], mem_attn_mask) -> torch.Tensor:
        """x is B x 1 x d (the newest token); its keys/values are appended to `cache` in place."""
        h = self.norm1(x)
        k, v = self.self_attn.project_kv(h)
        cache["k"] = torch.cat([cache["k"], k], dim=2)
        cache["v"] = torch.cat([cache["v"], v], dim=2)
        x = x + self.drop(self.self_attn.attend(h, cache["k"], cache["v"]))
        return self._cross_and_ffn(x, cache["mem_k"], cache["mem_v"], mem_attn_mask)


class TransformerDecoder(nn.Module):
    """Transformer decoder whose greedy/beam steps reuse cached keys/values of the prefix.

    A step runs the layers on the newest token only; keys/values of the memory are projected once in
    `init_state`. So decoding a line of L tokens costs L single-token passes, not L passes over prefixes.
    """

    def __init__(
        self, vocab_size: int, d_model: int = 256, nhead: int = 8, num_layers: int = 3, ffn_dim: int = 1024,
        dropout: float = 0.1,
    ) -> None:  # fmt: skip
        super().__init__()
        self.d_model = d_model
        self.embed = nn.Embedding(vocab_size, d_model)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(DecoderLayer(d_model, nhead, ffn_dim, dropout) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, vocab_size)

    def _embed(self, tokens: torch.Tensor, offset: int) -> torch.Tensor:
        pos = sinusoidal_positions(tokens.shape[1], self.d_model, tokens.device, offset)
        return self.drop(self.embed(tokens) * math.sqrt(self.d_model) + pos)

    def forward(self, memory: torch.Tensor, memory_mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        attn_mask = key_padding_to_attn_mask(memory_mask)
        x = self._embed(tgt_in, 0)
        for layer in self.layers:
            mem_k, mem_v = layer.cross_attn.project_kv(memory)
            x = layer(x, mem_k, mem_v, attn_mask)
        return self.out(self.norm(x))

    def memory_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every layer's cross-attention keys and values of the memory, computed once a line:
        layers x B x heads x columns x head_dim each."""
        kv = [layer.cross_attn.project_kv(memory) for layer in self.layers]
        return torch.stack([k for k, _ in kv]), torch.stack([v for _, v in kv])

    def step_tensors(self, prev_tokens, past_k, past_v, mem_k, mem_v, mem_attn_mask):
        """One decoding step on plain tensors, as torch decoding runs it and the ONNX step graph exports it:
        the newest tokens (B) and the prefix's self-attention keys/values (layers x B x heads x prefix x
        head_dim) -> next-token log-probs and the keys/values with this token's appended."""
        x = self._embed(prev_tokens[:, None], past_k.shape[3])
        new_k, new_v = [], []
        for i, layer in enumerate(self.layers):
            cache = {"k": past_k[i], "v": past_v[i], "mem_k": mem_k[i], "mem_v": mem_v[i]}
            x = layer.step(x, cache, mem_attn_mask)
            new_k.append(cache["k"])
            new_v.append(cache["v"])
        log_probs = F.log_softmax(self.out(self.norm(x[:, 0])).float(), dim=-1)
        return log_probs, torch.stack(new_k), torch.stack(new_v)

    def init_state(self, memory: torch.Tensor, memory_mask: torch.Tensor) -> State:
        """The state `step` carries: `step_tensors`' inputs (the ONNX step graph's too) but the tokens."""
        mem_k, mem_v = self.memory_kv(memory)
        past = mem_k.new_zeros(*mem_k.shape[:3], 0, mem_k.shape[4])
        return {
            "past_k": past,
            "past_v": past,
            "mem_k": mem_k,
            "mem_v": mem_v,
            "mem_attn_mask": key_padding_to_attn_mask(memory_mask),
        }

    def step(self, state: State, prev_tokens: torch.Tensor) -> tuple[torch.Tensor, State]:
        log_probs, past_k, past_v = self.step_tensors(prev_tokens, **state)
        return log_probs, {**state, "past_k": past_k, "past_v": past_v}

    def reorder_state(self, state: State, index: torch.Tensor) -> State:
        return {name: value.index_select(batch_axis(name), index) for name, value in state.items()}


def batch_axis(name: str) -> int:
    """The batch axis of a transformer decoding state's tensor: 1 after the layers axis, 0 for the mask."""
    return 0 if name == "mem_attn_mask" else 1


class AttentionDecoder(nn.Module):
    """VietOCR's seq2seq decoder: a bidirectional GRU reads the memory, a GRU with Bahdanau attention writes.

    As in VietOCR, the reading GRU's final states give the writer's first hidden state, and every
    output is predicted from the writer's state, the attended context and the input embedding.
    Padded memory positions are skipped (packed sequences) and never attended.
    """

    def __init__(
        self, vocab_size: int, d_model: int = 256, num_layers: int = 1, dropout: float = 0.1
    ) -> None:
        super().__init__()
        hidden = d_model
        self.num_layers = num_layers
        self.reader = nn.GRU(d_model, hidden, batch_first=True, bidirectional=True)
        self.init_hidden = nn.Linear(2 * hidden, hidden)
        self.attn_context = nn.Linear(2 * hidden, hidden)
        self.attn_hidden = nn.Linear(hidden, hidden, bias=False)
        self.attn_score = nn.Linear(hidden, 1, bias=False)
        self.embed = nn.Embedding(vocab_size, d_model)
        self.drop = nn.Dropout(dropout)
        self.writer = nn.GRU(
            d_model + 2 * hidden, hidden, num_layers=num_layers, dropout=dropout if num_layers > 1 else 0.0
        )
        self.out = nn.Linear(hidden + 2 * hidden + d_model, vocab_size)

    def init_state(self, memory: torch.Tensor, memory_mask: torch.Tensor) -> State:
        lengths = (~memory_mask).sum(dim=1).cpu()
        packed = pack_padded_sequence(memory, lengths, batch_first=True, enforce_sorted=False)
        outputs, h_n = self.reader(packed)
        context, _ = pad_packed_sequence(outputs, batch_first=True, total_length=memory.shape[1])
        hidden = torch.tanh(self.init_hidden(torch.cat([h_n[0], h_n[1]], dim=-1)))
        return {
            "hidden": hidden[None].repeat(self.num_layers, 1, 1).transpose(0, 1).contiguous(),  # B first
            "context": context,
            "context_proj": self.attn_context(context),  # the hidden-independent half of the attention energy
            "memory_mask": memory_mask,
        }

    def _step_logits(self, state: State, prev_tokens: torch.Tensor) -> tuple[torch.Tensor, State]:
        hidden = state["hidden"].transpose(0, 1).contiguous()  # layers x B x H
        emb = self.drop(self.embed(prev_tokens))
        energy = torch.tanh(state["context_proj"] + self.attn_hidden(hidden[-1])[:, None, :])
        scores = self.attn_score(energy).squeeze(-1).masked_fill(state["memory_mask"], float("-inf"))
        weights = scores.softmax(dim=-1)
        attended = torch.bmm(weights[:, None, :], state["context"]).squeeze(1)
        output, hidden = self.writer(torch.cat([emb, attended], dim=-1)[None], hidden)
        logits = self.out(torch.cat([output[0], attended, emb], dim=-1))
        return logits, {**state, "hidden": hidden.transpose(0, 1).contiguous()}

    def forward(self, memory: torch.Tensor, memory_mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        state = self.init_state(memory, memory_mask)
        logits = []
        for t in range(tgt_in.shape[1]):
            step_logits, state = self._step_logits(state, tgt_in[:, t])
            logits.append(step_logits)
        return torch.stack(logits, dim=1)

    def step(self, state: State, prev_tokens: torch.Tensor) -> tuple[torch.Tensor, State]:
        logits, state = self._step_logits(state, prev_tokens)
        return F.log_softmax(logits.float(), dim=-1), state

    def reorder_state(self, state: State, index: torch.Tensor) -> State:
        return index_batch(state, index)


class CTCHead(nn.Module):
    """Per-column class scores on the encoder memory, blank = id 0 (the pad id, never a target).

    Context beyond the CNN's receptive field comes from the encoder's optional transformer layers.
    """

    def __init__(self, d_model: int, vocab_size: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(d_model, vocab_size)

    def forward(self, memory: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(memory))


class CTCShortcut(nn.Module):
    """A training-only CTC head on the CNN's own columns, before any context layer (Retsinas et al., "Best
    practices for a handwritten text recognition system", DAS 2022): the CNN gets a short gradient path to
    the loss, so it learns to read sooner; it is dropped when a model is released.

    A 1-D convolution over 3 neighbouring columns, each CNN column split into `column_split` output columns,
    so its columns line up with the main head's and share its padding mask.
    """

    def __init__(self, channels: int, vocab_size: int, column_split: int = 1) -> None:
        super().__init__()
        self.column_split = column_split
        self.vocab_size = vocab_size
        self.conv = nn.Conv1d(channels, column_split * vocab_size, kernel_size=3, padding=1)

    def forward(self, columns: torch.Tensor) -> torch.Tensor:
        """B x T x C CNN columns -> B x (T x column_split) x V class scores."""
        b, t, _ = columns.shape
        scores = self.conv(columns.transpose(1, 2)).transpose(1, 2)  # B x T x (k V)
        return scores.reshape(b, t * self.column_split, self.vocab_size)
