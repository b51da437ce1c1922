"""The spine's foundations: errors, atomic files, run folders, checkpoints, precision, progress,
registries, checks, eval-mode, seeds and DDP helpers. Nothing here knows about any ML domain."""
