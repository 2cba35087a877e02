"""How one tensor of a ``.clz`` file can be stored; :mod:`compresslib.core.packing` chooses among these.

* :mod:`.common`: public helpers every encoding (and the ``.clz`` reader) uses: checks of dtypes,
  shapes and stored parts, exact narrowing;
* :mod:`.basic`: dense, constant, bitmask (plain and deflated), CSR, zlib;
* :mod:`.entropy`: codebook encodings for shared weights (fixed-width indices, index gaps, ANS coding),
  and the textbook Huffman code.

The encodings import only :mod:`.common`, never :mod:`compresslib.core.packing`.
"""
