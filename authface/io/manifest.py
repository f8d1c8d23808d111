"""The run manifest of a batch command: one JSONL file, the source of truth for what was done.

One ``run`` record per invocation (full resolved config, versions, device), then one ``photo`` record per photo
processed (status, output, faces with boxes/landmarks/seeds, timings), each appended and fsynced on its own, so a
kill loses at most the photo in flight. A re-run reads it to skip what is done (resume).
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from .write import append_jsonl, read_jsonl, repair_jsonl_tail

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"
#: Photo statuses that count as done for resume.
DONE_STATUSES = ("restored", "copied", "skipped_no_face")


class RunManifest:
    """Append-only JSONL run manifest at ``path``; every record gets this invocation's ``run_id``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.run_id = uuid.uuid4().hex[:12]

    def done(self) -> dict[str, str]:
        """input path -> output path ("" when skipped) of photos finished by earlier runs.

        Unreadable lines (a kill mid-write) are logged and ignored: their photos are processed again.
        """
        done: dict[str, str] = {}
        for line in read_jsonl(self.path):
            if line.record is None:
                logger.warning("%s: unreadable manifest line ignored (%s)", line.where, line.error)
                continue
            rec = line.record
            if rec.get("type") == "photo" and rec.get("status") in DONE_STATUSES and "input" in rec:
                done[rec["input"]] = rec.get("output") or ""
        return done

    def write(self, record: dict) -> None:
        """Append one record (fsynced), tagged with this run's ``run_id``."""
        repair_jsonl_tail(self.path)
        append_jsonl(self.path, [{"run_id": self.run_id, **record}])
