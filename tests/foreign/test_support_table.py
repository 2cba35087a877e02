"""The support table's refusal reasons are cut at word boundaries, never mid-word (no matrix run needed)."""
import re

from tests.foreign import support
from tests.foreign.matrix import shorten


def test_shorten_cuts_at_a_word_boundary():
    assert shorten("short", 10) == "short"
    assert shorten("which is not supported here", 16) == "which is not …"
    assert shorten("Detected mismatch between the structure of `inputs`", 42) == "Detected mismatch between the structure …"
    assert all(len(shorten("word " * 100, n)) <= n for n in (20, 50, 240))


def test_reasons_in_the_book_end_on_a_whole_word():
    text = support.TABLE.read_text()
    assert text == support.render(support.load())
    reasons = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("* ")]
    assert reasons
    stored = [c["detail"] for m in support.load().values() for row in m.values() for c in row.values()
              if c["status"] != "works"]
    cut = [r for r in reasons if r.endswith("…")]
    # every long reason was shortened: those stored whole (older runs) and those a run stored shortened
    assert len(cut) == sum(len(d) >= support.DETAIL_CHARS or d.endswith(" …") for d in stored)
    assert all(re.search(r"\S …$", r) for r in cut)  # ... after a whole word, not inside one
    full = {d.replace("\u200b", "") for d in stored}
    for r in cut:
        head = r[:-2].replace("\u200b", "")
        assert any(d.startswith(head) and (len(d) == len(head) or not d[len(head)].isalnum()) for d in full), r
