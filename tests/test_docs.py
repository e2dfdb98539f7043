"""The documentation that is generated from the workflow stays the workflow's.

docs/rulegraph.md holds the rule graph of the paper run as a Mermaid chart (GitHub renders it). The test
rebuilds the graph with Snakemake and compares rule names and edges, so a renamed, added or removed rule
fails here until the page is regenerated:

    .venv/bin/python tests/test_docs.py      # rewrites docs/rulegraph.md
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "rulegraph.md"
CONFIG = ROOT / "config" / "paper.yaml"
HEADER = """# Rule graph of the paper run

Generated from the workflow (`config/paper.yaml`) by `.venv/bin/python tests/test_docs.py`;
`tests/test_docs.py` fails when the workflow's rules or their connections change and this page does not.
The default run replaces `download` with `synthesize`, adds `truth` and `score_oracle`, and trains with
`train` (its ensemble ranks each member's best checkpoint, not the reference's checkpoint pool); with
`training.pack` > 1, `train_pack` trains the packs and `member` links each member's files out of its pack.
Each rule of a member set makes STNDT's set (`{dataset}/`); its `_variant` twin, the same command, makes
another variant's (`{dataset}/variants/{variant}/`). `evalai_submission` runs only when asked for.

"""


def current_mermaid() -> str:
    """The rule graph of config/paper.yaml, as Snakemake draws it in Mermaid."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "snakemake",
                "--snakefile",
                str(ROOT / "workflow" / "Snakefile"),
                "--configfile",
                str(CONFIG),
                "--directory",
                tmp,
                "--rulegraph",
                "mermaid-js",
                "--forceall",
                "--quiet",
            ],
            capture_output=True,
            text=True,
            cwd=tmp,
            check=True,
        )
    text = proc.stdout
    return text[text.index("flowchart") :].rstrip() + "\n"


def rules_and_edges(mermaid: str) -> tuple[set[str], set[tuple[str, str]]]:
    """Rule names and (upstream, downstream) rule pairs of a Mermaid rule graph (ids differ run to run)."""
    names = dict(re.findall(r"^\s*(id\d+)\[(\w+)\]", mermaid, re.MULTILINE))
    edges = {(names[a], names[b]) for a, b in re.findall(r"^\s*(id\d+) --> (id\d+)", mermaid, re.MULTILINE)}
    return set(names.values()), edges


def test_the_rule_graph_page_is_the_workflow_s():
    page = PAGE.read_text()
    block = re.search(r"```mermaid\n(.*?)```", page, re.DOTALL)
    assert block, f"{PAGE}: no mermaid block"
    shown, now = rules_and_edges(block.group(1)), rules_and_edges(current_mermaid())
    assert shown == now, (
        f"{PAGE} is stale (rules {sorted(shown[0] ^ now[0])}, edges "
        f"{sorted(shown[1] ^ now[1])} differ): run .venv/bin/python tests/test_docs.py"
    )


if __name__ == "__main__":
    PAGE.write_text(HEADER + "```mermaid\n" + current_mermaid() + "```\n")
    print(f"wrote {PAGE}")


def test_every_figure_and_table_has_a_report_caption_and_a_command():
    """The figure and table names live in stndt.figures.FIGURES and stndt.paper.TABLE_TITLES; the
    report captions and the `figure` command follow them."""
    import argparse

    import stndt.cli  # noqa: F401  (registers the commands)
    from stndt.commands import COMMANDS
    from stndt.figures import FIGURES
    from stndt.paper import TABLE_TITLES

    captions = {p.stem for p in (ROOT / "workflow" / "report").glob("*.rst")}
    assert set(FIGURES) | set(TABLE_TITLES) <= captions
    parser = argparse.ArgumentParser()
    COMMANDS["figure"][1](parser)
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert tuple(subparsers.choices) == FIGURES
