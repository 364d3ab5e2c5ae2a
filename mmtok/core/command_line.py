"""What the ``mmtok`` command's parsers are built from, without torch: the help formatter every command and
trainer shares (:class:`HelpFormatter`, and :class:`RawHelpFormatter` for a description or epilog laid out in
lines) and the choices of options whose code needs torch (:data:`VOCODER_CHOICES`), so that ``mmtok --help``,
a command's ``--help`` and ``--version`` answer without loading it.

>>> import argparse
>>> p = argparse.ArgumentParser(prog="x", formatter_class=HelpFormatter)
>>> _ = p.add_argument("--steps", type=int, default=10, help="optimizer steps")
>>> "optimizer steps (default: 10)" in p.format_help()
True
"""

from __future__ import annotations

import argparse

__all__ = ["VOCODER_CHOICES", "HelpFormatter", "RawHelpFormatter"]

VOCODER_CHOICES = ("auto", "learned", "griffin-lim")  # decode(vocoder=...) by name (or a Vocoder module)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Trainers' ``--help``: each option's default, unless its text already says it or there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


class RawHelpFormatter(HelpFormatter, argparse.RawDescriptionHelpFormatter):
    """:class:`HelpFormatter` that keeps the description's and epilog's line breaks."""
