"""One run's machinery: assembling the job, the LightningModule, callbacks, checkpoints, resume, signals, loggers,
sweeps, the run dir and what it leaves behind."""
