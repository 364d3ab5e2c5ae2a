"""A package's public names imported on first use (PEP 562): :func:`lazy_members` gives a package the
``__getattr__`` and ``__dir__`` that import each name from the module it lives in when it is first asked for,
and keep it. A subpackage whose face names torch-heavy classes can then be imported for what needs no torch
(``mmtok context`` reads configs and sizes) without loading torch.

>>> ns = {"__all__": ["sqrt"]}
>>> getattr_, dir_ = lazy_members("pkg", {"sqrt": "math"}, ns)
>>> getattr_("sqrt")(9.0), "sqrt" in ns, dir_()
(3.0, True, ['__all__', 'sqrt'])
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_members"]


def lazy_members(package: str, homes: Mapping[str, str], namespace: dict[str, Any]
                 ) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the package ``package`` whose globals are ``namespace``: a name of ``homes``
    (name -> the module it lives in) is imported on first use and kept in ``namespace``; any other name is an
    ``AttributeError``; ``dir()`` lists the globals and ``__all__``."""

    def __getattr__(name: str) -> object:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(homes[name]), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace.get("__all__", ())))

    return __getattr__, __dir__
