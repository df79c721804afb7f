"""python -m engine.decompose: the table, the JSON object, and one-line errors with exit code 2."""
import json

import pytest
import torch

from engine.checkpoint import save_checkpoint
from engine.decompose import main
from engine.model import GPT, PRESETS

F_TEXT = "3(a^2+2a)^2 - 5(a^2+2a) + 7"



@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    torch.manual_seed(0)
    return save_checkpoint(GPT(PRESETS["tiny"]), str(tmp_path_factory.mktemp("ck") / "tiny"), {"steps": 0})


def test_json_object(untrained, capsys):
    rc = main([F_TEXT, "--checkpoint", untrained, "--width", "3", "--max-new", "6", "--json", "--device", "cpu"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["input"] == F_TEXT and out["f"] == "3a⁴ + 12a³ + 7a² - 10a + 7"
    assert out["options"]["width"] == 3 and out["options"]["decoder"] == "beam"
    assert out["trained"] is False
    assert len(out["answers"]) == 3
    for a in out["answers"]:
        assert set(a) >= {"q_prefix", "q", "score", "verified", "p"}
        assert a["verified"] is (a["p"] is not None)
    assert out["timings"]["total_ms"] > 0 and out["timings"]["steps"] >= 1


def test_table_says_the_weights_are_untrained(untrained, capsys):
    rc = main([F_TEXT, "--checkpoint", untrained, "--preset", "V1", "--decoder", "greedy", "--max-new", "5"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "UNTRAINED" in out and "3a⁴ + 12a³" in out
    assert "decoder greedy, width 1, cache none" in out


@pytest.mark.parametrize("argv,message", [
    (["3(a^2+2a"], "never closed"),
    ([F_TEXT, "--width", "65"], "width"),
    ([F_TEXT, "--max-new", "290"], "block size"),
    ([F_TEXT, "--checkpoint", "/nonexistent/model"], "no checkpoint"),
])
def test_errors_are_one_line_and_exit_2(untrained, capsys, argv, message):
    if "--checkpoint" not in argv:
        argv = argv + ["--checkpoint", untrained]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err and "Traceback" not in err


def test_unknown_option_value_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        main([F_TEXT, "--cache", "paged"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_linear_flag_reaches_the_options(untrained, capsys):
    """--linear picks the kernels (fastest's tiled, or F.linear); the JSON records which ran."""
    for flag, expected in (([], "tiled"), (["--linear", "packed"], "packed"), (["--linear", "aten"], "aten")):
        assert main([F_TEXT, "--checkpoint", untrained, "--decoder", "greedy", "--max-new", "4", "--json", *flag]) == 0
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["options"]["linear"] == expected
