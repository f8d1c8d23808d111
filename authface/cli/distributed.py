"""Restoring on several processes (GPUs, or machines sharing a folder) on an existing engine: torch.distributed
as ``accelerate launch`` / ``torchrun`` set it up.

``accelerate launch -m authface restore IN -o OUT`` (or ``authface restore ... --num-processes N``, which starts
``torchrun`` itself) runs one process per device. Process ``r`` of ``w`` takes every ``w``-th photo from ``r`` of
the deterministic input order, uses its own device, appends to its own manifest shard, and, once every process is
done, process 0 merges the shards into ``manifest.jsonl``. Each face's seed depends only on the run seed and the
photo's relative path, so the outputs do not depend on how photos were split.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class World:
    """This process's place: ``rank`` of ``size`` processes, ``local_rank`` on its machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def current_world() -> World:
    """The launcher's world from the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), or a single process."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    rank = int(os.environ.get("RANK", "0"))
    return World(rank, size, int(os.environ.get("LOCAL_RANK", str(rank))))


def shard(items: list, world: World) -> list:
    """The items of this process: every ``size``-th from ``rank`` (deterministic, balanced within one item)."""
    return items[world.rank :: world.size] if world.distributed else items


def device_of(world: World, requested: str) -> str:
    """``requested`` unless it is ``auto`` in a distributed run: then this process's own GPU, else the CPU."""
    if requested != "auto" or not world.distributed:
        return requested
    import torch

    if torch.cuda.is_available():
        return f"cuda:{world.local_rank % torch.cuda.device_count()}"
    return "cpu"


def wait_for_everyone(world: World) -> None:
    """Block until every process got here (accelerate's barrier over the process group the launcher set up)."""
    if world.distributed:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(argv: list[str], num_processes: int) -> int:
    """Run ``authface <argv>`` on ``num_processes`` processes with torchrun on this machine; returns the worst
    exit code. On a machine without CUDA the processes use the CPU (gloo)."""
    import torch

    env = dict(os.environ)
    if not torch.cuda.is_available():
        env["ACCELERATE_USE_CPU"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={num_processes}",
           "--master-addr=127.0.0.1", f"--master-port={_free_port()}", "-m", "authface", *argv]  # fmt: skip
    return subprocess.call(cmd, env=env)
