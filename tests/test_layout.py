"""The repository's promises: the serving side never imports torch, the README has exactly two
set-up commands, and the CLI answers."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO


def test_service_never_imports_torch():
    code = "import sys, service.app, service.__main__, service.engine; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    readme = (REPO / "README.md").read_text()
    setup = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```(?:bash|sh)?\n(.*?)```", setup, re.S)
    assert len(commands) == 2, commands
    serve, test = (c.strip() for c in commands)
    assert "serve" in serve and "test" in test
    assert test.lstrip("./") in (REPO / ".ci" / "run").read_text()


def test_cli_lists_its_commands():
    out = subprocess.run([sys.executable, "-m", "perception.cli", "--help"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0
    # argparse lists one sub-command a line, indented by four spaces, under the COMMAND heading
    section = out.stdout.split("COMMAND\n", 1)[1].split("\n\n", 1)[0]
    commands = re.findall(r"^ {4}([a-z][\w-]*)", section, re.MULTILINE)
    assert {"train", "eval", "export", "export-variants", "serve", "data", "infer", "bench"} <= set(commands), section
    assert len(commands) == len(set(commands))


def test_cli_help_starts_without_torch():
    code = "import sys; from perception.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"


def test_readme_documents_every_setting():
    from service.settings import Settings

    readme = (REPO / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"`PERCEPTION_{name.upper()}`" in readme, name
