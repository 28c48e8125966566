"""Data: real sources, synthetic generation, augmentation, preprocessing and the LightningDataModule."""
