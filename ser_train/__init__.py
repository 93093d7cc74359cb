"""Training package: corpora loaders, dataset features, fit, export, evaluate, report."""
