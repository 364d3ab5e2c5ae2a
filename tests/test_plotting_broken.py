"""matplotlib that is installed but does not import (built against another numpy) is said as such, with its
own error, not as 'not installed'."""

from __future__ import annotations

import sys

import pytest

from mmtok.core import plotting
from mmtok.core.errors import DemoError


class _Broken:
    """A finder that fails every matplotlib import as a matplotlib built for another numpy does."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.split(".")[0] == "matplotlib":
            raise ImportError("numpy.core.multiarray failed to import")


@pytest.fixture
def broken_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in sys.modules if n.split(".")[0] == "matplotlib"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_Broken(), *sys.meta_path])
    monkeypatch.setattr(plotting, "_skipped", set())


@pytest.mark.usefixtures("broken_matplotlib")
def test_a_matplotlib_that_does_not_import_is_said_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert plotting.pyplot("out/loss.png") is None
    assert capsys.readouterr().err == ("matplotlib does not import (numpy.core.multiarray failed to import) "
                                       "(pip install 'mmtok[plot]'): skipping out/loss.png\n")
    with pytest.raises(DemoError) as said:
        plotting.pyplot("the demo's page", required=True, error=DemoError)
    assert str(said.value) == ("the demo's page needs matplotlib, which does not import (numpy.core.multiarray "
                               "failed to import): pip install 'mmtok[plot]'")
