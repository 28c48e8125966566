"""Training: the LightningModule, its callbacks, and the Hydra glue shared by train.py and eval.py."""
