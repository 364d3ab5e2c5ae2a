"""``mmtok eval --json`` on files of which none could be scored gives a summary of 0 files and 0 tokens, and no
usage or perplexity figures (not a usage of 0 % and a perplexity of 0)."""

from __future__ import annotations

import json

from mmtok.cli import main


def test_a_model_that_scored_no_file_has_no_usage_figures(tmp_path, capsys) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a picture")
    assert main(["eval", str(tmp_path / "broken.png"), "--image", "image", "--json"]) == 2
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    (summary,) = [r for r in rows if "summary" in r]
    assert (summary["files"], summary["tokens"], summary["codes_used"]) == (0, 0, 0)
    assert not {"usage", "usage_of_k", "perplexity"} & summary.keys()
