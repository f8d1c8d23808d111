"""``authface train``: fine-tune (moving here from authface.training)."""

from ..training import add_train_parser as add_parser  # noqa: F401
