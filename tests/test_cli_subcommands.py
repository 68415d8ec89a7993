"""Both command lines are argparse subparsers: --help lists every subcommand with its summary, the
default subcommand runs when the first argument is an option (or there is none), an explicitly
named subcommand reaches its own main with the rest of the arguments, and an unknown one is one
line + exit 2."""
import pytest

from lstm_numba import cli as lstm_cli
from mathbench import cli as mb_cli

TOOLS = {"mathbench": (mb_cli, "run"), "lstm_numba": (lstm_cli, "sweep")}
EXPECTED = {"mathbench": {"run", "verify", "accuracy", "compare", "report", "export"},
            "lstm_numba": {"sweep", "train", "generate", "predict", "report", "accuracy", "vs-torch"}}


def _subcommand_lines(help_text: str) -> dict:
    """name -> summary from the 'subcommands:' section argparse prints."""
    section = help_text.split("\nsubcommands:\n", 1)[1].split("\n\n", 1)[0]
    out, last = {}, None
    for line in section.splitlines()[1:]:  # the first line is the COMMAND header
        if line.startswith("    ") and not line.startswith("     "):
            last, _, summary = line.strip().partition(" ")
            out[last] = summary.strip()
        elif last:
            out[last] += " " + line.strip()
    return out


@pytest.mark.parametrize("tool", TOOLS)
def test_help_lists_every_subcommand_with_a_summary(tool, capsys):
    module, default = TOOLS[tool]
    with pytest.raises(SystemExit) as e:
        module.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    listed = _subcommand_lines(text)
    assert set(listed) >= EXPECTED[tool] and set(listed) == set(module.COMMANDS)
    assert all(len(s) > 10 for s in listed.values()), listed
    assert f"(default: {default})" in text
    assert "--threads" in text  # the default subcommand's options are the top level's


def _spy(monkeypatch, module, names):
    """Replace each subcommand's main by a recorder of the argv it receives."""
    calls = []
    for name in names:
        summary, _, *rest = module.COMMANDS[name]
        monkeypatch.setitem(module.COMMANDS, name,
                            (summary, lambda argv, name=name: calls.append((name, argv)) or 0, *rest))
    return calls


@pytest.mark.parametrize("tool", TOOLS)
def test_default_subcommand_when_the_first_argument_is_an_option(tool, monkeypatch):
    module, default = TOOLS[tool]
    calls = _spy(monkeypatch, module, module.COMMANDS)
    assert module.main(["--threads", "1", "--no-progress"]) == 0
    assert module.main([]) == 0
    assert module.main([default, "--threads", "1"]) == 0
    # an option value that happens to be a subcommand's name is still a value
    assert module.main(["--out", "report"]) == 0
    assert calls == [(default, ["--threads", "1", "--no-progress"]), (default, []), (default, ["--threads", "1"]),
                     (default, ["--out", "report"])]


@pytest.mark.parametrize("tool", TOOLS)
def test_named_subcommand_gets_the_rest(tool, monkeypatch):
    module, _ = TOOLS[tool]
    calls = _spy(monkeypatch, module, module.COMMANDS)
    for name in module.COMMANDS:
        assert module.main([name, "x", "--flag", "-h"]) == 0
    assert calls == [(name, ["x", "--flag", "-h"]) for name in module.COMMANDS]


def _one_line(capsys) -> str:
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("tool", TOOLS)
def test_unknown_subcommand_one_line_exit_2(tool, capsys, monkeypatch):
    module, _ = TOOLS[tool]
    calls = _spy(monkeypatch, module, module.COMMANDS)
    assert module.main(["bogus", "--threads", "1"]) == 2
    line = _one_line(capsys)
    assert line.startswith(f"{tool}: error: ") and "'bogus'" in line
    assert all(f"'{name}'" in line for name in module.COMMANDS)  # it names the valid ones
    # a subcommand after the default's options is refused, not run with the wrong arguments
    assert module.main(["--threads", "1", "report", "r"]) == 2
    assert "goes first" in _one_line(capsys)
    assert calls == []


def test_subcommand_errors_keep_their_prog_name(capsys):
    assert mb_cli.main(["compare", "only_one"]) == 2
    assert _one_line(capsys).startswith("mathbench compare: error: ")
    assert mb_cli.main(["--processes", "abc"]) == 2
    assert _one_line(capsys).startswith("mathbench: error: argument --processes")
    assert lstm_cli.main(["report"]) == 2
    assert _one_line(capsys).startswith("lstm_numba report: error: ")
    assert lstm_cli.main(["sweep", "--hidden", "0"]) == 2  # the default keeps the bare name
    assert _one_line(capsys) == "lstm_numba: error: --hidden 0: must be positive"


def test_ctrl_c_messages_per_subcommand(capsys, monkeypatch):
    def interrupted(argv):
        raise KeyboardInterrupt

    for module, name, expected in [(mb_cli, "compare", "mathbench compare: interrupted"),
                                   (lstm_cli, "report", "lstm_numba report: interrupted; finished rows are saved")]:
        summary, _, *rest = module.COMMANDS[name]
        monkeypatch.setitem(module.COMMANDS, name, (summary, interrupted, *rest))
        assert module.main([name]) == 130
        assert _one_line(capsys).startswith(expected)
