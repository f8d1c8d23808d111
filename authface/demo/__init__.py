"""The web demo (``authface demo``; ``pip install 'authface[demo]'``).

* :mod:`authface.demo.runner` — what the Restore button does, without any web framework: restore uploads, write
  ``restored/``, ``faces/``, ``manifest.jsonl`` and a zip of them.
* :mod:`authface.demo.cache` — loaded models kept between requests, keyed by the settings that change loading.
* :mod:`authface.demo.app` — the Gradio page (imports Gradio; the other two do not).
"""

from .cache import RestorerCache
from .runner import DemoError, DemoRun, PhotoOutcome, restore_uploads

__all__ = ["DemoError", "DemoRun", "PhotoOutcome", "RestorerCache", "restore_uploads"]
