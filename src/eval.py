"""Evaluate a checkpoint or released model: `python src/eval.py ckpt_path=... [labels_tsv=DIR/labels.tsv] [fold=0]`."""

import hydra
from omegaconf import DictConfig

from vihtr.training.config import CONFIG_DIR
from vihtr.training.run import evaluate_from_config


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig) -> dict:
    return evaluate_from_config(cfg)


if __name__ == "__main__":
    main()
