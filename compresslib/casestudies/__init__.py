"""Case studies of the book: code a chapter runs on one particular model, built on the library's techniques.

Not part of the library's API, and apart from its layers (``tests/test_layering.py``): nothing in
``compresslib`` imports them. ``minilm``: the sentence encoder all-MiniLM-L6-v2 (chapter 7).
"""
