"""The run manifest of a batch command: one JSONL file, the source of truth for what was done.

One ``run`` record per invocation (full resolved config, versions, device), then one ``photo`` record per photo
processed (status, output, faces with boxes/landmarks/seeds, timings), each appended and fsynced on its own, so a
kill loses at most the photo in flight. A re-run reads it to skip what is done (resume).

With several processes (GPUs or machines sharing a folder), process ``r`` of ``w`` appends to its own shard
``manifest.r-of-w.jsonl``; :func:`merge_shards` folds the shards into ``manifest.jsonl`` once every process is
done, and resume reads the manifest and any shards a killed run left behind.
"""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path

from .write import append_jsonl, read_jsonl, repair_jsonl_tail

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"
#: Photo statuses that count as done for resume.
DONE_STATUSES = ("restored", "copied", "skipped_no_face")
_SHARD = re.compile(r"^manifest\.(\d+)-of-(\d+)\.jsonl$")


def shard_name(rank: int, world_size: int) -> str:
    """File name of process ``rank``'s manifest shard, e.g. ``manifest.0-of-2.jsonl``."""
    return f"manifest.{rank}-of-{world_size}.jsonl"


def shard_paths(folder: str | Path) -> list[Path]:
    """Every manifest shard in ``folder``, by world size then rank."""
    found = [(m, p) for p in Path(folder).glob("manifest.*-of-*.jsonl") if (m := _SHARD.match(p.name))]
    return [p for m, p in sorted(found, key=lambda mp: (int(mp[0].group(2)), int(mp[0].group(1))))]


class RunManifest:
    """Append-only JSONL run manifest in ``folder`` (or at a ``.jsonl`` path); every record gets this invocation's
    ``run_id``. With ``rank``/``world_size`` it appends to this process's shard instead."""

    def __init__(self, path: str | Path, rank: int = 0, world_size: int = 1, run_id: str | None = None):
        path = Path(path)
        self.folder = path.parent if path.suffix == ".jsonl" else path
        self.main = path if path.suffix == ".jsonl" else path / MANIFEST_NAME
        self.path = self.main if world_size == 1 else self.folder / shard_name(rank, world_size)
        self.run_id = run_id or uuid.uuid4().hex[:12]

    def done(self) -> dict[str, str]:
        """input path -> output path ("" when skipped) of photos finished by earlier runs (manifest and shards).

        Unreadable lines (a kill mid-write) are logged and ignored: their photos are processed again.
        """
        done: dict[str, str] = {}
        for path in [self.main, *shard_paths(self.folder)]:
            for line in read_jsonl(path):
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


def merge_shards(folder: str | Path) -> int:
    """Append every shard's readable records to ``manifest.jsonl`` (shard by shard, in rank order) and delete
    the shards; returns how many records moved. Safe to re-run after a kill: a shard is deleted only after its
    records are appended and fsynced (a kill between the two can repeat a shard's records, which resume reads as
    the same photos done twice — harmless)."""
    folder = Path(folder)
    main = folder / MANIFEST_NAME
    moved = 0
    for shard in shard_paths(folder):
        records = [line.record for line in read_jsonl(shard) if line.record is not None]
        repair_jsonl_tail(main)
        append_jsonl(main, records)
        moved += len(records)
        shard.unlink()
    return moved
