"""The learning core: per-robot optimizers, graphs, problems, metrics, experiments."""
