"""One list of exit codes: no code means two things, and docs/cli.md lists them as the code has them."""

import re
from pathlib import Path

import pytest

from dyimages_common.process import exit_codes

pytestmark = pytest.mark.unit

CLI_DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def _codes() -> dict[str, int]:
    return {name: value for name, value in vars(exit_codes).items() if name.isupper() and isinstance(value, int)}


def test_every_exit_code_means_one_thing() -> None:
    codes = _codes()
    assert len(set(codes.values())) == len(codes), codes
    assert codes["MODEL_MISMATCH"] != codes["SERVICE_DOWN"]


def test_the_cli_doc_lists_the_codes_the_code_has() -> None:
    text = " ".join(CLI_DOC.read_text().split())
    line = re.search(r"`dyimages_common\.process\.exit_codes`\): (.*?)\.", text)
    assert line is not None, "docs/cli.md's exit-code line names dyimages_common.process.exit_codes"
    listed = {int(code) for code in re.findall(r"(?:^|, )(\d) ", line.group(1))}
    assert listed == set(_codes().values())
