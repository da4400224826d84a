"""The pipeline's stages, one module each; every stage reads and writes the run folder only."""
