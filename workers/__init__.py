"""Chorus workers: arq stage jobs, the StageExecutor, the model chain, the demo model."""
