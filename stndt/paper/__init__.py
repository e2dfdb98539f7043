"""The paper's tables, regenerated from this pipeline's results beside the published numbers."""
