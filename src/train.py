"""Train a recognizer: `python src/train.py backbone=b2 stage=pretrain fold=0` (see conf/train.yaml)."""

import hydra
from omegaconf import DictConfig

from vihtr.training.config import CONFIG_DIR
from vihtr.training.run import train


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    return metrics.get(cfg.get("optimized_metric")) if cfg.get("optimized_metric") else None


if __name__ == "__main__":
    main()
