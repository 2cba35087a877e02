"""PyTorch backend of compresslib (imported only when a torch model is used)."""
