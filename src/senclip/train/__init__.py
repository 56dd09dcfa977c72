"""SenCLIP training: config, Lightning module and data, resume, export.

This is the only part of senclip that imports Lightning, and the library
never imports it. Submodules:

* :mod:`senclip.train.config`: ``TrainConfig`` dataclasses, YAML + overrides (no torch);
* :mod:`senclip.train.data`: ``PairedDataModule``, ``StepBatchSampler`` (resumable order);
* :mod:`senclip.train.module`: ``SenclipModule`` (losses, queue, DDP gathering, validation);
* :mod:`senclip.train.run`: ``fit(cfg, resume="auto")``;
* :mod:`senclip.train.export`: ``export_checkpoint`` / ``export_base``.
"""
