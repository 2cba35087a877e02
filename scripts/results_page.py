"""Render ``book/results.md`` from the committed bench results (``bench/results/*.json``).

Every figure on the Results page comes from a JSON file a bench wrote (``python bench/<name>.py --json
bench/results/<name>.json``), with the machine, CPU flags, threads, load average and commit it ran on; this
script only lays them out. ``tests/test_results_page.py`` re-renders the page and fails when it differs
from the committed one, so the page and the JSON cannot drift apart.

    python scripts/results_page.py            # rewrite book/results.md
    python scripts/results_page.py --check    # exit 1 when book/results.md is stale
"""
from __future__ import annotations

import glob
import os
import sys

from compresslib.benchresults import COMPACT, COMPACT_PARETO, load_results, provenance, table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
PAGE = os.path.join(ROOT, "book", "results.md")

# the benches, in book order, with what each measures (a bench without committed results is listed as such)
BENCHES = [
    ("fashion", "int8 ResNet-20 on Fashion-MNIST, deployed, with error bars (the harder data set)"),
    ("baseline", "chapter 1: the reference models measured"),
    ("quantization", "chapter 2: every quantization mode, both frameworks"),
    ("pruning", "chapter 3: unstructured, N:M and structured pruning"),
    ("lowrank", "chapter 4: SVD and Tucker"),
    ("residual", "chapter 5: residual families and distillation"),
    ("deep_compression", "chapter 6: prune, share, entropy-code"),
    ("deploy", "chapter 7: compresslib's exports against the runtimes' own quantizers"),
    ("transformers", "chapter 8: a causal LM's perplexity and MiniLM's cosine, ours beside Keras's and "
                     "torchao's quantizers"),
    ("pareto", "chapter 9: cl.optimize for a budget against each runtime's own int8 (NNCF, ONNX Runtime, "
               "LiteRT), head to head"),
]
def render() -> str:
    out = ["# Results", "",
           "Every figure on this page was written by a bench script into `bench/results/<bench>.json` and is "
           "laid out here by `python scripts/results_page.py`; a test re-renders the page and fails when it "
           "and the JSON disagree. Accuracies are on the full test set with their 95 % (Wilson) interval; a "
           "drop is a claim only when McNemar's exact paired test supports it (p < 0.05), otherwise the "
           "*paired test* column says *within noise*. Speed-ups are ratios measured in the same run, with the "
           "interleaved timer; the machine, CPU flags, threads and load average of each run are stated under "
           "its table.", ""]
    for name, what in BENCHES:
        path = os.path.join(RESULTS, f"{name}.json")
        out += [f"## {name}: {what}", ""]
        if not os.path.exists(path):
            out += [f"No committed results yet: `python bench/{name}.py --json bench/results/{name}.json` on a "
                    "quiet machine writes them.", ""]
            continue
        doc = load_results(name, ROOT)  # always a dict with "rows"
        rows = doc["rows"]
        if doc.get("quick"):
            out += ["```{warning}", "These results come from a `--quick` smoke run: not figures to quote.", "```", ""]
        for t in doc.get("targets") or []:
            out.append(f"- **{t['status']}** — {t['target']}" + (f" ({t['path']})" if t.get("path") else "")
                       + (f": {t['figures']}" if t.get("figures") else ""))
        if doc.get("targets"):
            out.append("")
        h2h = doc.get("head_to_head")
        if h2h:
            out += [f"Head to head ({h2h['pairs']} alternated pairs of single calls, batch 32): "
                    f"{h2h['int8']} runs **{h2h['speedup']:.2f}×** as fast as {h2h['fp32']} "
                    f"({h2h['int8_ms']:.3f} ms against {h2h['fp32_ms']:.3f} ms).", ""]
        frameworks = list(dict.fromkeys(r.get("framework") for r in rows))
        for fw in frameworks:  # one compact table per framework keeps it inside the page column
            if len(frameworks) > 1:
                out += [f"**{ {'torch': 'PyTorch', 'keras': 'Keras'}.get(fw, fw) }**", ""]
            # the section names the data set: the compact table drops it from the model names
            short = [dict(r, model=str(r.get("model", "")).removeprefix(f"{name}_").removeprefix(
                "fashion_" if name == "pareto" else "")) for r in rows
                     if r.get("framework") == fw]
            out += table(short, COMPACT_PARETO if name == "pareto" else COMPACT) + [""]
        out += ["<details><summary>All columns: bytes, 95 % intervals, McNemar p, latency spread</summary>", "",
                *table(rows), "", "</details>", ""]
        out += [f"Measured on: {provenance(doc, rows)}.", ""]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = open(PAGE).read() if os.path.exists(PAGE) else ""
        if current != text:
            print(f"{PAGE} is stale: run python scripts/results_page.py", file=sys.stderr)
            return 1
        return 0
    with open(PAGE, "w") as fh:
        fh.write(text)
    print(f"wrote {PAGE} from {len(glob.glob(os.path.join(RESULTS, '*.json')))} result files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
