"""engine.scaling: the README's throughput table comes from a measurement the command itself writes."""
import json
import os
import shutil

from engine.scaling import BEGIN, END, main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_measures_both_configurations_on_the_same_batches_and_renders_the_readme(tmp_path, capsys):
    """A smoke run (tiny model, 3 steps): both configurations train, on the same batches, and the README's
    marked block is replaced by the table, from the JSON alone when re-rendered."""
    readme, out = str(tmp_path / "README.md"), str(tmp_path / "scaling.json")
    shutil.copy(os.path.join(ROOT, "README.md"), readme)
    assert main(["--preset", "tiny", "--steps", "3", "--skip", "1", "--batch-tokens", "128", "--out", out,
                 "--readme", readme]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    with open(out, encoding="utf-8") as fh:
        assert json.load(fh) == last
    assert [(r["processes"], r["threads"]) for r in last["rows"]] == [(1, 2), (2, 1)]
    assert all(r["same_batches"] and r["tokens_per_s"] > 0 and r["steps_measured"] == 2 for r in last["rows"])
    text = open(readme, encoding="utf-8").read()
    block = text[text.index(BEGIN): text.index(END)]
    assert "| 2 processes x 1 thread | 2 | 1 |" in block and "Not measured yet" not in block
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        original = fh.read()
    outside = lambda t: t[: t.index(BEGIN)] + t[t.index(END):]
    assert outside(text) == outside(original)  # nothing else in the README changes
    assert main(["--render-only", "--out", out, "--readme", readme]) == 0
    assert open(readme, encoding="utf-8").read() == text
