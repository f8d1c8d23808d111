"""``authface degrade``: synthetic benchmarks (moving here from authface.eval.commands)."""

from ..eval.commands import add_degrade_parser as add_parser  # noqa: F401
