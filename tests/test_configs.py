"""Every option of every config group composes with the real `conf/` and builds what it describes."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import hydra
import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from training_helpers import TINY, compose_config, one_torch_thread  # noqa: F401

from vihtr.data.datamodule import LineDataModule
from vihtr.models.encoder import PAPER_MARGIN
from vihtr.training.callbacks import CheckpointAveraging
from vihtr.training.config import CONFIG_DIR
from vihtr.training.run import check_ctc_capacity, check_fold, instantiate_group, train
from vihtr.training.system import OCRSystem

TINY_MODEL = [o for o in TINY if o.startswith(("model.", "image."))]


def build_system(cfg) -> OCRSystem:
    return hydra.utils.instantiate(cfg.model, _recursive_=False, _convert_="all")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def test_every_group_option_is_tested():
    """A new config file must be added to the tests below."""
    assert options("backbone") == ["b1", "b2", "lite1", "resnet18"]
    assert options("decoder") == ["attention", "ctc", "transformer"]
    assert options("stage") == ["finetune", "pretrain"]
    assert options("trainer") == ["cpu", "ddp", "default", "gpu"]
    assert options("logger") == ["csv", "none", "wandb"]
    assert options("callbacks") == ["default"]
    assert options("debug") == ["fdr", "limit", "overfit"]
    assert options("experiment") == sorted(EXPERIMENTS)
    assert options("launcher") == ["submitit_slurm"]
    assert options("image") == ["default"]


@pytest.mark.parametrize(
    "backbone, timm_name",
    [
        ("b1", "tf_efficientnetv2_b1"),
        ("b2", "tf_efficientnetv2_b2"),
        ("lite1", "tf_efficientnet_lite1"),
        ("resnet18", "resnet18"),
    ],
)
def test_backbone(backbone, timm_name, tmp_path):
    cfg = compose_config("train", [*TINY_MODEL, f"backbone={backbone}"], tmp_path)
    system = build_system(cfg)
    assert system.model.config["backbone"] == timm_name
    images = torch.zeros(2, 1, 32, 128)
    memory, mask = system.model.encode(images, torch.tensor([128, 64]))
    assert memory.shape == (2, math.ceil((128 + PAPER_MARGIN) / 8), 32)  # width / 8 columns, height pooled
    assert (~mask).sum(dim=1).tolist() == [128 // 8, 64 // 8]  # padding and the paper margin are masked


@pytest.mark.parametrize("decoder", ["transformer", "attention", "ctc"])
def test_decoder(decoder, tmp_path):
    cfg = compose_config("train", [*TINY_MODEL, f"decoder={decoder}"], tmp_path)
    system = build_system(cfg)
    assert system.model.ctc_head is not None  # every decoder option trains a CTC head too
    if decoder == "ctc":
        assert system.model.decoder is None
        assert system.hparams.val_decode == "ctc" and system.hparams.ce_weight == 0
    else:
        assert type(system.model.decoder).__name__.lower().startswith(decoder)
        assert system.hparams.val_decode == "greedy"


@pytest.mark.parametrize("stage", ["pretrain", "finetune"])
def test_stage_composes_its_data_mixture(stage, tmp_path):
    cfg = compose_config("train", [f"stage={stage}"], tmp_path)
    assert cfg.stage_name == stage
    assert OmegaConf.select(cfg, "data.train_sources.kalapa") is not None
    synthetic = {"pretrain": "synth_address", "finetune": "synth_real_labels"}[stage]
    assert synthetic in cfg.data.train_sources
    # every source has a weight and every weight a source
    assert set(cfg.data.train_weights) == set(cfg.data.train_sources)
    # validation is the real held-out fold only
    assert set(cfg.data.val_sources) == {"kalapa", "vnondb"}
    assert cfg.data.val_sources.kalapa.fold == cfg.fold


@pytest.mark.parametrize("stage", ["pretrain", "finetune"])
@pytest.mark.parametrize("style", ["form", "v1"])
def test_synthetic_sources_take_the_renderer_style_and_the_held_out_fold(stage, style, tmp_path):
    cfg = compose_config("train", [f"stage={stage}", f"synth_style={style}", "fold=2"], tmp_path)
    synthetic = {k: v for k, v in cfg.data.train_sources.items() if k.startswith("synth_")}
    assert synthetic and all(v.style == style and v.held_out_fold == 2 for v in synthetic.values())


def test_synth_probe_trains_on_synthetic_lines_only(tmp_path):
    cfg = compose_config("train", ["experiment=synth_probe"], tmp_path)
    weights = cfg.data.train_weights
    assert weights.kalapa == weights.vnondb == 0 and sum(weights.values()) > 0
    assert (
        cfg.synth_style == "form"
        and cfg.model.net == compose_config("train", ["experiment=lite1_ctc"], tmp_path).model.net
    )  # the release recipe's model


@pytest.mark.parametrize(
    "stage, lr, schedule", [("pretrain", 1e-3, "onecycle"), ("finetune", 3e-4, "cosine")]
)
def test_stage_on_tiny_data_builds_datamodule_and_system(stage, lr, schedule, tmp_path):
    # a command-line `data=` wins over the stage's own data mixture
    cfg = compose_config("train", [*TINY, f"stage={stage}"], tmp_path)
    datamodule = hydra.utils.instantiate(cfg.data)
    assert isinstance(datamodule, LineDataModule)
    assert set(datamodule.train_sources) == {"kalapa", "vnondb"}
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["images"].shape[:3] == (cfg.data.batch_size, 1, 32)
    system = build_system(cfg)
    assert system.hparams.optimizer["lr"] == lr
    assert system.hparams.scheduler["name"] == schedule


@pytest.mark.parametrize(
    "overrides, kind",
    [
        ([], torch.optim.AdamW),
        (
            [
                "model.optimizer._target_=torch.optim.SGD",
                "~model.optimizer.betas",
                "+model.optimizer.momentum=0.9",
                "model.scheduler.name=linear",
            ],
            torch.optim.SGD,
        ),
    ],
)
def test_optimizer_and_schedule_come_from_their_target_configs(overrides, kind, tmp_path):
    cfg = compose_config("train", [*TINY_MODEL, *overrides], tmp_path)
    system = build_system(cfg)
    system._trainer = SimpleNamespace(estimated_stepping_batches=100, max_steps=100)
    built = system.configure_optimizers()
    optimizer, scheduler = built["optimizer"], built["lr_scheduler"]["scheduler"]
    assert type(optimizer) is kind
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == cfg.model.optimizer.weight_decay and no_decay["weight_decay"] == 0.0
    assert no_decay["params"] and all(p.ndim == 1 for p in no_decay["params"])  # norms and biases
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(system.model.parameters()))
    for _ in range(100):
        optimizer.step()
        scheduler.step()
    final = optimizer.param_groups[0]["lr"] / cfg.model.optimizer.lr
    assert final == pytest.approx(0.01) if kind is torch.optim.SGD else final < 0.01


@pytest.mark.parametrize("name", ["default", "cpu"])
def test_trainer_instantiates(name, tmp_path):
    cfg = compose_config("train", [f"trainer={name}"], tmp_path)
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False, callbacks=[])
    assert isinstance(trainer, pl.Trainer)
    assert trainer.default_root_dir == str(tmp_path)
    if name == "cpu":
        assert isinstance(trainer.accelerator, pl.accelerators.CPUAccelerator)
        assert trainer.precision == "32-true"


def test_gpu_and_ddp_trainers_compose(tmp_path):
    gpu = compose_config("train", ["trainer=gpu"], tmp_path).trainer
    assert (gpu.accelerator, gpu.devices, gpu.precision) == ("gpu", 1, "16-mixed")
    ddp = compose_config("train", ["trainer=ddp"], tmp_path).trainer
    assert (ddp.strategy, ddp.devices) == ("ddp", 2)
    assert ddp.use_distributed_sampler is False  # the datamodule splits its stream by rank itself
    assert ddp.sync_batchnorm is torch.cuda.is_available()
    on_cpu = compose_config("train", ["trainer=ddp", "trainer.accelerator=cpu"], tmp_path).trainer
    assert on_cpu.sync_batchnorm is False  # SyncBatchNorm refuses CPU modules


def test_wandb_logger_is_offline_in_the_run_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_OFFLINE", raising=False)
    cfg = compose_config("train", ["logger=wandb", "backbone=b2", "fold=3"], tmp_path)
    [logger] = instantiate_group(cfg.logger)
    assert isinstance(logger, pl.loggers.WandbLogger)
    assert logger._offline is True
    assert logger.save_dir == str(tmp_path)
    assert logger._wandb_init["name"] == "train-pretrain-tf_efficientnetv2_b2-fold3"


def test_csv_and_no_logger(tmp_path):
    [csv] = instantiate_group(compose_config("train", ["logger=csv"], tmp_path).logger)
    assert isinstance(csv, pl.loggers.CSVLogger)
    assert csv.save_dir == str(tmp_path)
    assert instantiate_group(compose_config("train", ["logger=none"], tmp_path).get("logger")) == []


def test_default_callbacks(tmp_path):
    cfg = compose_config("train", [], tmp_path)
    callbacks = {type(c).__name__: c for c in instantiate_group(cfg.callbacks)}
    assert set(callbacks) == {
        "ModelCheckpoint",
        "CheckpointAveraging",
        "LearningRateMonitor",
        "RichProgressBar",
    }
    checkpoint = callbacks["ModelCheckpoint"]
    assert checkpoint.dirpath == str(tmp_path / "checkpoints")
    assert (checkpoint.monitor, checkpoint.mode, checkpoint.save_last) == ("val/cer", "min", True)
    assert isinstance(callbacks["CheckpointAveraging"], CheckpointAveraging)
    assert callbacks["CheckpointAveraging"].dirpath == checkpoint.dirpath


@pytest.mark.parametrize(
    "debug, expected",
    [
        ("fdr", {"fast_dev_run": 1}),
        ("overfit", {"num_sanity_val_steps": 0}),
        # over a step-based experiment too: 2 epochs of 20 batches, validated at each epoch's end
        (
            "limit",
            {"limit_train_batches": 20, "limit_val_batches": 5, "max_steps": -1, "val_check_interval": 1.0},
        ),
    ],
)
@pytest.mark.parametrize("experiment", [None, "lite1_ctc"])
def test_debug(debug, expected, experiment, tmp_path):
    overrides = ["trainer=cpu", f"debug={debug}", *([f"experiment={experiment}"] if experiment else [])]
    cfg = compose_config("train", overrides, tmp_path)
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False, callbacks=[])
    for key, value in expected.items():  # what the Trainer built from the composed config does
        assert getattr(trainer, key) == value, key
    if debug in ("fdr", "overfit"):
        assert not cfg.get("logger") and cfg.test is False
    if debug == "overfit":  # trains and validates on the same few lines, as they are
        assert cfg.fold == "all" and cfg.data.augment is None
        assert cfg.data.train_sources.kalapa.root == cfg.data.val_sources.kalapa.root
        assert cfg.data.train_sources.vnondb is None and cfg.data.val_sources.vnondb is None


# experiment -> (backbone, stage, d_model, image height)
EXPERIMENTS = {
    "adapt": ("tf_efficientnet_lite1", "pretrain", 256, 48),
    "b1_384_ptr_f5": ("tf_efficientnetv2_b1", "pretrain", 384, 160),
    "b1_384_f5": ("tf_efficientnetv2_b1", "finetune", 384, 160),
    "b2_256_ptr_f5": ("tf_efficientnetv2_b2", "pretrain", 256, 128),
    "b2_256_f5": ("tf_efficientnetv2_b2", "finetune", 256, 128),
    "cpu_release": ("tf_efficientnetv2_b1", "pretrain", 256, 32),
    "cpu_small": ("tf_efficientnetv2_b1", "pretrain", 192, 32),
    "lite1_ctc": ("tf_efficientnet_lite1", "pretrain", 256, 48),
    "lite1_fast": ("tf_efficientnet_lite1", "pretrain", 256, 48),
    "lite1_long": ("tf_efficientnet_lite1", "pretrain", 256, 48),
    "lite1_long2": ("tf_efficientnet_lite1", "pretrain", 256, 48),
    "lite1_long3": ("tf_efficientnet_lite1", "pretrain", 256, 48),
    "lite1_long4": ("tf_efficientnet_lite1", "pretrain", 256, 48),
    "lite1_strokes": ("tf_efficientnet_lite1", "pretrain", 256, 48),
    "lite1_tf": ("tf_efficientnet_lite1", "pretrain", 256, 48),
    "synth_probe": ("tf_efficientnet_lite1", "pretrain", 256, 48),
}
CPU_EXPERIMENTS = {
    "adapt",
    "cpu_release",
    "cpu_small",
    "lite1_ctc",
    "lite1_fast",
    "lite1_long",
    "lite1_long2",
    "lite1_long3",
    "lite1_long4",
    "lite1_strokes",
    "lite1_tf",
    "synth_probe",
}


@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS))
def test_experiment(experiment, tmp_path):
    backbone, stage, d_model, height = EXPERIMENTS[experiment]
    cfg = compose_config("train", [f"experiment={experiment}"], tmp_path)
    assert (cfg.model.net.backbone, cfg.stage_name, cfg.image.height) == (backbone, stage, height)
    system = build_system(cfg)
    assert system.model.config["d_model"] == d_model
    assert system.preprocess.height == height  # the model carries the experiment's input size
    expected_accelerator = "cpu" if experiment in CPU_EXPERIMENTS else "gpu"
    assert cfg.trainer.accelerator == expected_accelerator


def test_lite1_fast_gives_finer_ctc_columns_for_under_half_the_encoder_flops(tmp_path):
    """The fast shape (narrowed lines, CNN at its own stride 32, columns split in 16) must keep what the
    release gives CTC, a column per 4 px of the unnarrowed line or finer, and cost far less to encode."""
    from PIL import Image
    from torch.utils.flop_counter import FlopCounterMode

    line = Image.new("L", (1800, 120), 255)  # a Kalapa-sized scan: 720 px wide at 48 px high
    cost, columns = {}, {}
    for experiment in ("lite1_ctc", "lite1_fast"):
        system = build_system(compose_config("train", [f"experiment={experiment}"], tmp_path)).eval()
        image = system.preprocess(line)[None]
        with FlopCounterMode(display=False) as flops, torch.inference_mode():
            memory, mask = system.model.encode(image, torch.tensor([image.shape[-1]]))
        cost[experiment], columns[experiment] = flops.get_total_flops(), int((~mask).sum())
    assert columns["lite1_fast"] >= columns["lite1_ctc"] >= 720 // 4
    assert cost["lite1_fast"] < 0.5 * cost["lite1_ctc"]


def test_lite1_backbone_starts_from_the_package_imagenet_weights(tmp_path):
    from vihtr.models.pretrained import adapt_stem, efficientnet_lite1_imagenet

    cfg = compose_config("train", [*TINY_MODEL, "backbone=lite1"], tmp_path)
    stem = adapt_stem(efficientnet_lite1_imagenet(), 1)["conv_stem.weight"]
    assert torch.equal(build_system(cfg).model.encoder.backbone.conv_stem.weight, stem)
    cfg.model.backbone_weights = None  # random init
    assert not torch.equal(build_system(cfg).model.encoder.backbone.conv_stem.weight, stem)


@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS))
def test_every_experiment_fits_its_longest_labels_in_ctc_columns(experiment, tmp_path):
    check_ctc_capacity(compose_config("train", [f"experiment={experiment}"], tmp_path))


def test_a_ctc_shape_too_narrow_for_the_labels_is_refused(tmp_path):
    cfg = compose_config("train", [*TINY, "image.max_width=512", "model.net.width_stride=8"], tmp_path)
    cfg.data.max_label_length = 126
    with pytest.raises(ValueError, match="at most 64 columns"):
        check_ctc_capacity(cfg)
    with pytest.raises(ValueError, match="at most 64 columns"):
        train(cfg)  # before anything is built
    cfg.model.net.width_stride = 4
    check_ctc_capacity(cfg)


def test_submitit_launcher_config():
    """`-m launcher=submitit_slurm` composes with the plugin installed: a GPU trainer, one GPU a task."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["launcher=submitit_slurm"], return_hydra_config=True)
    assert cfg.trainer.accelerator == "gpu"
    launcher = cfg.hydra.launcher
    assert launcher._target_.startswith("hydra_plugins.hydra_submitit_launcher")
    assert launcher.gpus_per_node == 1 and launcher.tasks_per_node == 1


@pytest.mark.parametrize("name", ["default", "pretrain", "finetune", "tiny"])
def test_training_and_validation_read_one_definition_of_each_real_source(name, tmp_path):
    cfg = compose_config("train", [f"data={name}", "data.sources.kalapa.tone_style=keep"], tmp_path)
    for key in ("kalapa", "vnondb"):
        train_source = OmegaConf.to_container(cfg.data.train_sources[key], resolve=True)
        val_source = OmegaConf.to_container(cfg.data.val_sources[key], resolve=True)
        assert (train_source.pop("split"), val_source.pop("split")) == ("train", "val")
        assert train_source == val_source
        assert "_partial_" not in train_source  # built in full, unlike the definition
    assert cfg.data.train_sources.kalapa.tone_style == cfg.data.val_sources.kalapa.tone_style == "keep"


def test_the_label_length_limit_is_what_the_decoder_can_emit(tmp_path):
    cfg = compose_config("train", ["model.net.max_len=100"], tmp_path)
    assert cfg.data.max_label_length == 98  # less the start and end tokens
    assert compose_config("eval", ["ckpt_path=x"], tmp_path).data.max_label_length is None  # set by the model


@pytest.mark.parametrize("fold", ["0", "1", "2", "3", "4", "all"])
def test_fold_accepted(fold, tmp_path):
    cfg = compose_config("train", [f"fold={fold}"], tmp_path)
    check_fold(cfg.fold)
    assert cfg.data.val_sources.kalapa.fold == cfg.fold


def test_fold_out_of_range_is_rejected(tmp_path):
    cfg = compose_config("train", [*TINY, "fold=7"], tmp_path)
    with pytest.raises(ValueError, match="fold must be"):
        check_fold(cfg.fold)
    with pytest.raises(ValueError, match="fold must be"):
        train(cfg)  # before anything is built


def test_eval_config_composes(tmp_path):
    cfg = compose_config("eval", ["ckpt_path=model.ckpt", "data=tiny"], tmp_path)
    assert cfg.paths.output_dir == str(tmp_path)
    assert cfg.data._target_.endswith("LineDataModule")
    assert cfg.decode is None and cfg.labels_tsv is None
    with pytest.raises(Exception, match="ckpt_path"):
        OmegaConf.to_container(compose_config("eval", [], tmp_path), throw_on_missing=True)


@pytest.mark.parametrize("margin, expected", [(None, None), (3, 4 + 3)])
def test_validation_decoding_stops_near_the_longest_label_when_bounded(margin, expected, tmp_path):
    """Short runs (the debug configs) bound validation decoding: an untrained decoder would otherwise run
    every line to net.max_len. Unbounded (the default) decodes as the predictor does."""
    cfg = compose_config("train", [*TINY_MODEL, f"model.val_max_len_margin={margin or 'null'}"], tmp_path)
    system = build_system(cfg).eval()
    asked, decode = [], system.model.decode

    def spy(*args, **kwargs):
        asked.append(kwargs["max_len"])
        return decode(*args, **kwargs)

    system.model.decode = spy
    batch = {
        "images": torch.rand(3, 1, 32, 200),
        "widths": torch.tensor([200, 150, 60]),
        "texts": ["ab", "abcd", ""],
    }
    with torch.inference_mode():
        texts = system.decode_batch(batch)
    assert len(texts) == 3 and len(asked) == 3  # three width buckets: 256, 192 and 64 px
    assert set(asked) == {expected}
    if expected:  # at most the longest label (4) + 3 characters
        assert all(len(t) <= 4 + 3 for t in texts), texts


def test_data_workers_leave_a_core_to_the_training_loop(monkeypatch):
    from vihtr.training.config import data_workers

    for cores, workers in ((2, 1), (1, 0), (16, 4)):
        monkeypatch.setattr("os.cpu_count", lambda cores=cores: cores)
        assert data_workers(4) == workers


def test_make_train_trains_the_recipe_of_the_shipped_default(tmp_path):
    """`make train` (no ARGS) composes the network and preprocessing of the default release."""
    import json
    import re

    from vihtr.inference.predictor import default_model_paths
    from vihtr.paths import REPO_ROOT

    recipe = re.search(
        r"^train:.*\n\t.*src/train\.py \$\(or \$\(ARGS\),(.+)\)$", (REPO_ROOT / "Makefile").read_text(), re.M
    )
    assert recipe, "make train has a default recipe"
    cfg = compose_config("train", recipe.group(1).split(), tmp_path)
    release = json.loads((Path(default_model_paths()[0]) / "config.json").read_text(encoding="utf-8"))
    net = OmegaConf.to_container(cfg.model.net, resolve=True)
    shipped = release["model"]
    for key in ("backbone", "d_model", "width_stride", "column_upsample", "encoder_layers", "context", "ctc"):
        assert net[key] == shipped[key], key
    assert (net["decoder"] or "none") == shipped["decoder"]
    assert (cfg.image.height, cfg.image.max_width) == (
        release["preprocess"]["height"],
        release["preprocess"]["max_width"],
    )


def test_lite1_tf_is_the_release_with_attention_context_and_its_columns(tmp_path):
    """The ensemble partner starts from vihtr-lite1's weights: everything but the context layers is taken,
    the self-attention layers start fresh, and the output columns are the release's."""
    release = Path(__file__).resolve().parents[1] / "models" / "vihtr-lite1" / "weights.pt"
    cfg = compose_config("train", ["experiment=lite1_tf", f"model.init_from={release}"], tmp_path)
    system = build_system(cfg)
    reference = build_system(compose_config("train", ["experiment=lite1_ctc"], tmp_path))
    assert system.model.config["context"] == "transformer"
    assert reference.model.config["context"] == "lstm"
    state = torch.load(release, map_location="cpu", weights_only=True)
    taken = [
        k for k, v in system.model.state_dict().items() if k in state and torch.equal(v, state[k].float())
    ]
    assert any(k.startswith("encoder.backbone.") for k in taken) and any("upsample" in k for k in taken)
    assert not any(k.startswith("encoder.layers.") for k in taken)
    images, widths = torch.zeros(1, 1, 48, 640), torch.tensor([640])
    with torch.no_grad():
        assert system.model.encode(images, widths)[0].shape == reference.model.encode(images, widths)[0].shape
