"""Keras 3 backend of compresslib (imported only when a Keras model is used)."""
