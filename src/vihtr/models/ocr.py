"""`OCRModel`: the whole recognizer as a plain `nn.Module` (no Lightning), rebuilt from plain kwargs.

images B x C x H x W + true widths -> CNN encoder -> memory -> an autoregressive decoder ("transformer"
or VietOCR's GRU "attention" decoder) and/or a CTC head. `config` holds every constructor argument, so
a checkpoint or a released model rebuilds it from a dict.
"""

from __future__ import annotations

import torch
from torch import nn

from vihtr.models import decoding
from vihtr.models.decoders import AttentionDecoder, CTCHead, TransformerDecoder
from vihtr.models.decoding import DecodeResult, ctc_best_path
from vihtr.models.encoder import CNNEncoder
from vihtr.text.charset import VIETNAMESE_CHARSET, Charset

DECODERS = ("transformer", "attention", "none")

__all__ = ["DECODERS", "DecodeResult", "OCRModel"]


class OCRModel(nn.Module):
    def __init__(
        self,
        charset_chars: str = VIETNAMESE_CHARSET,
        backbone: str = "tf_efficientnetv2_b1",
        in_chans: int = 1,
        d_model: int = 256,
        width_stride: int = 8,
        encoder_layers: int = 0,
        context: str = "transformer",
        column_upsample: int = 1,
        decoder: str = "transformer",
        decoder_layers: int = 3,
        nhead: int = 8,
        ffn_dim: int = 1024,
        dropout: float = 0.1,
        ctc: bool = True,
        max_len: int = 128,
    ) -> None:
        super().__init__()
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        if decoder == "none" and not ctc:
            raise ValueError("a model without a decoder needs the CTC head (ctc=True)")
        self._config = {
            "charset_chars": charset_chars, "backbone": backbone, "in_chans": in_chans, "d_model": d_model,
            "width_stride": width_stride, "encoder_layers": encoder_layers, "context": context,
            "column_upsample": column_upsample, "decoder": decoder,
            "decoder_layers": decoder_layers, "nhead": nhead, "ffn_dim": ffn_dim, "dropout": dropout,
            "ctc": ctc, "max_len": max_len,
        }  # fmt: skip
        self._charset = Charset(charset_chars)
        vocab = len(self._charset)
        self.max_len = max_len
        self.encoder = CNNEncoder(
            backbone, in_chans, d_model, width_stride, encoder_layers=encoder_layers, context=context,
            column_upsample=column_upsample, nhead=nhead,
            ffn_dim=ffn_dim, dropout=dropout,
        )  # fmt: skip
        if decoder == "transformer":
            self.decoder = TransformerDecoder(vocab, d_model, nhead, decoder_layers, ffn_dim, dropout)
        elif decoder == "attention":
            self.decoder = AttentionDecoder(vocab, d_model, decoder_layers, dropout)
        else:
            self.decoder = None
        self.ctc_head = CTCHead(d_model, vocab, dropout) if ctc else None

    @property
    def config(self) -> dict:
        """Every constructor argument: `OCRModel(**model.config)` rebuilds the same network."""
        return dict(self._config)

    @property
    def charset(self) -> Charset:
        return self._charset

    def encode(self, images: torch.Tensor, widths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> memory B x T x d_model and memory_mask B x T (True at padded columns)."""
        return self.encoder(images, widths)

    def forward(self, images: torch.Tensor, widths: torch.Tensor, tgt_in: torch.Tensor | None = None) -> dict:
        """Teacher forcing: `tgt_in` is targets[:, :-1] (starting with SOS). Losses are the caller's job.
        The CNN's own columns come back too (`columns`), for training heads that read them directly."""
        columns = self.encoder.columns(images)
        memory, memory_mask = self.encoder.contextualise(columns, widths)
        logits = None
        if self.decoder is not None and tgt_in is not None:
            logits = self.decoder(memory, memory_mask, tgt_in)
        ctc_logits = self.ctc_head(memory) if self.ctc_head is not None else None
        return {"logits": logits, "ctc_logits": ctc_logits, "memory_mask": memory_mask, "columns": columns}

    @torch.no_grad()
    def decode(
        self,
        images: torch.Tensor,
        widths: torch.Tensor,
        method: str | None = None,
        beam_size: int = 4,
        max_len: int | None = None,
    ) -> DecodeResult:
        """Read a batch: method "greedy", "beam" or "ctc"; None picks greedy, or ctc for a CTC-only model."""
        method = decoding.check_method(method or decoding.default_method(self.decoder is not None))
        memory, memory_mask = self.encode(images, widths)
        if method == "ctc":
            if self.ctc_head is None:
                raise ValueError("this model has no CTC head")
            return ctc_best_path(self.ctc_head(memory), memory_mask)
        if self.decoder is None:
            raise ValueError(f"a CTC-only model cannot decode with {method!r}; use method='ctc'")
        return decoding.run_decoder(
            method, self.decoder, memory, memory_mask, max_len or self.max_len, beam_size
        )

    def texts(self, result: DecodeResult) -> list[str]:
        return [self._charset.decode(ids) for ids in result.token_ids]
