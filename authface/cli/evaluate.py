"""``authface eval``: metrics and reports (moving here from authface.eval.commands)."""

from ..eval.commands import add_eval_parser as add_parser  # noqa: F401
