"""``authface prepare``: build a training set (moving here from authface.data.prepare)."""

from ..data.prepare import add_prepare_parser as add_parser  # noqa: F401
