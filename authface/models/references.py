"""What a model reference is, decided before any weights are loaded.

A reference (``--model``, ``--controlnet``, a LoRA or VAE) is a local folder, a local single file, a hub id
(``owner/name``) or a missing path. :func:`resolve_model_ref` tells which; :func:`locate` also turns a hub id
into its Hugging Face cache folder when the hub cannot be used (``HF_HUB_OFFLINE`` set, or no network), so that
offline runs load local folders and the hub is never asked (no repeated "could not reach the Hub" warnings).
:func:`detect_base` reads only ``model_index.json`` / ``config.json`` files or a single file's header (tensor
names and shapes) to tell the model family (SD 1.x, SD 2.x, SD 2.x v-prediction, SDXL), so the right pipeline is
chosen, and an unsupported model (a ControlNet given as the base) is reported, before anything is loaded.
:func:`check_single_file` and :func:`check_model_folder` report a damaged or incomplete local model as such,
naming the file and what is wrong.

"No network" is detected once per process (:func:`hub_unreachable`: one TCP connection to the hub host, or to the
configured proxy, with a 2 s limit), so a run without network fails in seconds, not after minutes of retries.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import logging
import os
import socket
import struct
import threading
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

logger = logging.getLogger(__name__)

#: Model families :func:`detect_base` tells apart ("other": anything else, e.g. an inpainting or SD3 model).
BaseFamily = Literal["sd1", "sd2", "sd2-v", "sdxl", "controlnet", "other"]
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
#: Seconds the one network check may take (the connection, name resolution included).
NETWORK_TIMEOUT_S = 2.0
#: Components a Stable Diffusion folder may list that AuthFace never loads (not checked, not needed).
UNUSED_COMPONENTS = ("safety_checker", "feature_extractor", "image_encoder")
_WEIGHT_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".ckpt",
    ".pt",
    ".pth",
    ".safetensors.index.json",
    ".bin.index.json",
)


class ModelNotFoundError(OSError):
    """A model could not be found locally or fetched; the message says why and how to pass a local copy."""


class ModelPathNotFoundError(ModelNotFoundError, FileNotFoundError):
    """A local model path (not written as a hub id ``owner/name``) does not exist; the message names it."""


class CorruptModelError(ValueError):
    """A local model file or folder exists but is damaged or incomplete (named, with what is wrong)."""


class UnsupportedModelError(ValueError, NotImplementedError):
    """A model this version cannot run as a base (a ControlNet given as the base), reported before any weights are
    loaded."""


# ---------------------------------------------------------------------------------------------- hub and network
def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or "0"
    return value.strip().lower() in ("1", "true", "yes", "on")


def _probe_target() -> tuple[str, int]:
    """(host, port) the hub is reached through: the HTTPS proxy when one is configured, else the endpoint."""
    from huggingface_hub import constants

    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        if os.environ.get(var):
            proxy = urlparse(os.environ[var] if "://" in os.environ[var] else f"http://{os.environ[var]}")
            if proxy.hostname:
                return proxy.hostname, proxy.port or 8080
    url = urlparse(constants.ENDPOINT)
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


@functools.cache
def hub_unreachable() -> str | None:
    """None when a TCP connection to the hub host (or proxy) succeeds within :data:`NETWORK_TIMEOUT_S`, else why
    not (e.g. "no network: huggingface.co:443 could not be reached within 2 s (gaierror: ...)").

    Checked once per process (``hub_unreachable.cache_clear()`` checks again); name resolution is included in the
    limit. A failure is logged once (info); :func:`locate` warns once when it then takes a model from the cache."""
    host, port = _probe_target()
    result: list[BaseException | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=NETWORK_TIMEOUT_S).close()
            result.append(None)
        except BaseException as err:  # noqa: BLE001 - any failure (a sandbox may raise non-OSErrors) = no network
            result.append(err)

    worker = threading.Thread(target=connect, name="authface-network-check", daemon=True)
    worker.start()
    worker.join(NETWORK_TIMEOUT_S + 0.5)
    if result and result[0] is None:
        return None
    why = f"{type(result[0]).__name__}: {result[0]}" if result else "timed out"
    reason = f"no network: {host}:{port} could not be reached within {NETWORK_TIMEOUT_S:g} s ({why})"
    logger.info("%s; models are taken from the Hugging Face cache only", reason)
    return reason


@functools.cache
def _warn_cache_only(reason: str) -> None:
    logger.warning(
        "%s; using the models in the Hugging Face cache (HF_HUB_OFFLINE=1 skips this check)", reason
    )


def offline_reason() -> str | None:
    """Why the hub cannot be used now ("HF_HUB_OFFLINE is set" or the no-network reason), or None."""
    if hub_offline():
        return "HF_HUB_OFFLINE is set"
    return hub_unreachable()


@functools.cache
def hub_cli() -> str:
    """The download command of the installed huggingface_hub: ``hf`` (>= 0.34) or ``huggingface-cli`` (older)."""
    try:
        dist = importlib.metadata.distribution("huggingface_hub")
    except importlib.metadata.PackageNotFoundError:
        return "hf"
    scripts = {ep.name for ep in dist.entry_points if ep.group == "console_scripts"}
    if "hf" in scripts or "huggingface-cli" not in scripts:
        major, minor = (int(p) if p.isdigit() else 0 for p in (dist.version.split(".") + ["0"])[:2])
        if "hf" in scripts or (major, minor) >= (0, 34):
            return "hf"
    return "huggingface-cli"


def download_command(repo_id: str, local_dir: str | None = None, include: tuple[str, ...] = ()) -> str:
    """The shell command that downloads ``repo_id`` (only the files matching ``include`` patterns, if given)
    with the installed huggingface_hub (see :func:`hub_cli`)."""
    cmd = f"{hub_cli()} download {repo_id}"
    if include:
        cmd += " --include " + " ".join(f'"{pattern}"' for pattern in include)
    return cmd + (f" --local-dir {local_dir}" if local_dir else "")


def cached_snapshot(repo_id: str, revision: str | None = None) -> Path | None:
    """The Hugging Face cache folder of ``repo_id`` at ``revision`` (default: main), or None when not cached.
    Never touches the network."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except Exception:  # noqa: BLE001 - LocalEntryNotFoundError and friends: not in the cache
        return None


# ---------------------------------------------------------------------------------------------- references
#: How to pass each kind of reference as a local copy: (what, option, example).
_OPTIONS = {
    "model": ("--model", "/path/to/model"),
    "ControlNet": ("--controlnet", "/path/to/controlnet"),
    "tiny decoder": ("--set guidance.tiny_decoder=", "/path/to/taesd"),
    "VAE": ("--set model.vae=", "/path/to/vae"),
}
_MODEL_FORMS = (
    "    a diffusers folder:       --model /path/to/folder   (Python: load_pipeline('/path/to/folder'))\n"
    "    a single-file checkpoint: --model /path/to/model.safetensors "
    "[--set model.single_file_config=/path/to/diffusers-config-folder]\n"
)
_CONTROLNET_FORMS = (
    "    a ControlNet:             --controlnet /path/to/folder-or-file "
    "[--set model.controlnet_single_file_config=/path/to/folder-with-config.json]\n"
)
_TINY = (
    "  For an offline smoke test: `python -m authface.testing.tiny_model tiny-model` and --model tiny-model "
    "(random weights: its output is noise)."
)
LOCAL_FORMS = _MODEL_FORMS + _CONTROLNET_FORMS + _TINY


def _option(what: str) -> tuple[str, str]:
    return _OPTIONS.get(
        what, _OPTIONS["model"] if "model" in what else (f"the {what} option", "/path/to/folder")
    )


def is_hub_id(ref: str) -> bool:
    """True for a reference written as a hub repository id ``owner/name`` (huggingface_hub's grammar).

    Anything else — a leading ``.``, ``/`` or ``~``, a backslash, more than one slash, no slash, or a
    checkpoint suffix — is a local path."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if ref.startswith((".", "/", "~")) or "\\" in ref or ref.count("/") != 1:
        return False
    if ref.lower().endswith(SINGLE_FILE_SUFFIXES):
        return False
    try:
        validate_repo_id(ref)
    except HFValidationError:
        return False
    return True


def resolve_model_ref(ref: str | os.PathLike, what: str = "model") -> Path | str:
    """An existing local path (``Path``), or a hub id (``str``, see :func:`is_hub_id`). Touches no network.

    Raises:
        ModelPathNotFoundError: ``ref`` is neither an existing path nor a hub id (the message names the path).
    """
    text = os.fspath(ref)
    path = Path(text).expanduser()
    if path.exists():
        return path
    if is_hub_id(text):
        return text
    raise ModelPathNotFoundError(
        f"{what} path '{text}' does not exist (looked for {path.absolute()}). A hub id is written owner/name; "
        f"a local model is one of —\n{_CONTROLNET_FORMS if what == 'ControlNet' else LOCAL_FORMS}"
    )


def not_found_error(
    missing: list[tuple[str, str]], reason: str, err: Exception | None = None
) -> ModelNotFoundError:
    """One error for hub ids that are not available: ``missing`` holds (what, hub id) pairs ("model",
    "ControlNet", "tiny decoder", "VAE"); ``reason`` why the hub could not supply them. The message names the
    download command of the installed huggingface_hub, the options that take local copies and HF_HUB_OFFLINE=1."""
    names = " and ".join(f"the {what} '{ref}'" for what, ref in missing)
    cause = (
        f" ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})" if err is not None else ""
    )
    offline = reason == "HF_HUB_OFFLINE is set" or reason.startswith("no network")
    why = f"not in the Hugging Face cache, and {reason}" if offline else reason
    downloads = "\n".join(f"      {download_command(ref, _option(what)[1])}" for what, ref in missing)
    passes = " ".join(f"{_option(what)[0]}{'' if _option(what)[0].endswith('=') else ' '}{_option(what)[1]}"
                      for what, ref in missing)  # fmt: skip
    only_controlnet = all(what == "ControlNet" for what, _ in missing)
    forms = _CONTROLNET_FORMS if only_controlnet else LOCAL_FORMS
    then = (
        "HF_HUB_OFFLINE=1 uses the cache without trying the network"
        if reason != "HF_HUB_OFFLINE is set"
        else "keep HF_HUB_OFFLINE=1"
    )
    return ModelNotFoundError(
        f"could not load {names}: {why}{cause}.\n"
        f"  Fix: download where there is internet —\n{downloads}\n"
        f"    then pass the folders: {passes}\n"
        f"    (or download without --local-dir into the Hugging Face cache and run again; {then}).\n"
        f"  Local copies you already have can be passed as —\n{forms}"
    )


def locate(ref: str | os.PathLike, what: str = "model", revision: str | None = None) -> Path | str:
    """Like :func:`resolve_model_ref`, but when the hub cannot be used (see :func:`offline_reason`) a hub id
    becomes its cache folder (``Path``), so nothing asks the hub. Online, a hub id stays a ``str``.

    Raises:
        ModelPathNotFoundError: a missing local path. ModelNotFoundError: a hub id, offline and not cached.
    """
    missing = find_missing([(what, ref)], revision)
    if missing:
        raise not_found_error(missing, offline_reason() or "")
    src = resolve_model_ref(ref, what)
    reason = offline_reason() if isinstance(src, str) else None
    if reason is None:
        return src
    if reason != "HF_HUB_OFFLINE is set":
        _warn_cache_only(reason)  # once per process: the run goes on without network
    return cached_snapshot(src, revision)


def find_missing(
    refs: list[tuple[str, str | os.PathLike]], revision: str | None = None
) -> list[tuple[str, str]]:
    """The (what, hub id) pairs of ``refs`` that cannot be had now: hub ids not in the cache while the hub cannot
    be used. Online nothing is missing (the hub is asked when loading). Raises ModelPathNotFoundError for a
    missing local path."""
    hub = [(what, os.fspath(ref)) for what, ref in refs if isinstance(resolve_model_ref(ref, what), str)]
    if not hub or offline_reason() is None:
        return []
    return [(what, ref) for what, ref in hub if cached_snapshot(ref, revision) is None]


# ---------------------------------------------------------------------------------------------- local files
def read_safetensors_header(path: Path) -> dict:
    """The JSON header of a ``.safetensors`` file (tensor name -> dtype, shape, data_offsets), checked against
    the file's size. Reads only the header.

    Raises:
        CorruptModelError: not a safetensors file, or truncated (the message names the file and the sizes).
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if n < 2 or n > size - 8 or n > 1 << 28:
            raise CorruptModelError(
                f"{path}: not a safetensors file (its first 8 bytes do not give a header length that fits the "
                f"file's {size} bytes); an incomplete download, or another format with a .safetensors name"
            )
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptModelError(f"{path}: not a safetensors file (its header is not JSON: {err})") from None
    if not isinstance(header, dict):
        raise CorruptModelError(f"{path}: not a safetensors file (its header is not a JSON object)")
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (KeyError, TypeError, ValueError, IndexError):
        raise CorruptModelError(
            f"{path}: not a safetensors file (a header entry has no data_offsets)"
        ) from None
    if 8 + n + end > size:
        raise CorruptModelError(
            f"{path}: truncated: its header describes {8 + n + end} bytes but the file has {size} "
            f"(an interrupted download or copy; download it again)"
        )
    return header


def check_single_file(path: Path) -> dict:
    """Shapes of a single-file checkpoint's tensors, read without loading them: name -> meta tensor (shape
    only). ``.safetensors``: from the header; other suffixes: ``torch.load`` memory-mapped (weights only).

    Raises:
        CorruptModelError: not a checkpoint suffix, not a safetensors file, truncated, or not a readable PyTorch
            checkpoint (named, with the reason).
    """
    import torch

    if not path.name.lower().endswith(SINGLE_FILE_SUFFIXES):
        raise CorruptModelError(
            f"{path}: not a checkpoint file; expected one of {', '.join(SINGLE_FILE_SUFFIXES)}"
        )
    if path.name.lower().endswith(".safetensors"):
        header = read_safetensors_header(path)
        return {k: torch.empty(v["shape"], device="meta") for k, v in header.items() if k != "__metadata__"}
    try:
        state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for a damaged file
        raise CorruptModelError(
            f"{path}: cannot be read as a PyTorch checkpoint (truncated, damaged or another format): "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not state:
        raise CorruptModelError(f"{path}: holds no tensors (not a model checkpoint)")
    return {k: torch.empty(tuple(v.shape), device="meta") for k, v in state.items() if hasattr(v, "shape")}


def _config_files(cls: str) -> tuple[str, ...]:
    """The file (any of) a diffusers/transformers component of class ``cls`` keeps its configuration in."""
    if "Scheduler" in cls:
        return ("scheduler_config.json",)
    if "Tokenizer" in cls:
        return ("tokenizer_config.json", "vocab.json", "tokenizer.json")
    if "Processor" in cls or "FeatureExtractor" in cls:
        return ("preprocessor_config.json",)
    return ("config.json",)


def check_component_folder(folder: Path, cls: str = "") -> None:
    """Raise CorruptModelError when a model folder (``config.json`` + weights) lacks its config or weights, or
    holds a damaged ``.safetensors`` file. Schedulers and tokenizers need only their config files."""
    configs = _config_files(cls)
    if not any((folder / name).is_file() for name in configs):
        raise CorruptModelError(f"{folder}: missing {' or '.join(configs)} (an incomplete download or copy?)")
    if configs != ("config.json",):
        return
    weights = [p for p in folder.iterdir() if p.name.endswith(_WEIGHT_SUFFIXES)]
    if not weights:
        raise CorruptModelError(
            f"{folder}: has config.json but no weights (*.safetensors or *.bin); an incomplete download or copy?"
        )
    for path in weights:
        if path.name.endswith(".safetensors"):
            read_safetensors_header(path)


def check_model_folder(folder: Path, index: dict | None) -> None:
    """Check a local folder before loading it: a pipeline folder (``index`` = its model_index.json) has each
    listed component (except :data:`UNUSED_COMPONENTS`) with its config and intact weights; a model folder
    (``index`` None) has config.json and weights. Raises CorruptModelError naming the file and what is wrong."""
    if index is None:
        check_component_folder(folder)
        return
    for name, value in index.items():
        if name.startswith("_") or name in UNUSED_COMPONENTS or not isinstance(value, (list, tuple)):
            continue
        if len(value) != 2 or value[0] is None or value[1] is None:
            continue
        sub = folder / name
        if not sub.is_dir():
            raise CorruptModelError(
                f"{folder}: model_index.json lists '{name}' ({value[1]}) but {sub} is missing"
            )
        check_component_folder(sub, value[1])


def read_json(folder: Path, name: str) -> dict | None:
    """A JSON file of a local folder, or None when absent. Raises CorruptModelError when it is not JSON."""
    path = folder / name
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptModelError(f"{path}: not valid JSON ({err})") from None


# ---------------------------------------------------------------------------------------------- model family
_SINGLE_FILE_FAMILIES = {
    "v1": "sd1", "v2": "sd2", "xl_base": "sdxl", "xl_refiner": "sdxl", "xl_inpaint": "sdxl",
    "playground-v2-5": "sdxl", "controlnet": "controlnet",
}  # fmt: skip


def family_of_checkpoint(shapes: dict) -> BaseFamily:
    """The family of a single-file checkpoint from its tensor names and shapes (diffusers' own inference,
    ``infer_diffusers_model_type``)."""
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    try:
        kind = infer_diffusers_model_type(shapes)
    except Exception:  # noqa: BLE001 - diffusers' heuristics index keys that may be absent
        kind = "other"
    if any(k.startswith("conditioner.embedders.1") for k in shapes):
        kind = "xl_base"
    return _SINGLE_FILE_FAMILIES.get(kind, "other")  # type: ignore[return-value]


def family_of_folder(folder: Path) -> BaseFamily:
    """The family of a local diffusers folder from its JSON files only."""
    index = read_json(folder, "model_index.json")
    if index is None:
        config = read_json(folder, "config.json") or {}
        return "controlnet" if "ControlNet" in str(config.get("_class_name", "")) else "other"
    unet = read_json(folder, "unet/config.json") or {}
    cross = unet.get("cross_attention_dim")
    if "XL" in str(index.get("_class_name", "")) or "text_encoder_2" in index or cross == 2048:
        return "sdxl"
    if cross == 1024:
        scheduler = read_json(folder, "scheduler/scheduler_config.json") or {}
        return "sd2-v" if scheduler.get("prediction_type") == "v_prediction" else "sd2"
    return "sd1"


def detect_base(ref: str | os.PathLike, revision: str | None = None) -> BaseFamily:
    """The model family of a reference — "sd1", "sd2", "sd2-v" (v-prediction), "sdxl", "controlnet" or "other" —
    from ``model_index.json`` / ``config.json`` or a single file's header, without loading weights. A hub id
    is looked up in the cache when the hub cannot be used, else its JSON files are fetched (small files only).

    Raises ModelPathNotFoundError, ModelNotFoundError, CorruptModelError (see :func:`locate`,
    :func:`check_single_file`)."""
    src = locate(ref, "model", revision)
    if isinstance(src, Path):
        return family_of_checkpoint(check_single_file(src)) if src.is_file() else family_of_folder(src)
    from huggingface_hub import hf_hub_download

    found = {}
    for name in ("model_index.json", "config.json", "unet/config.json", "scheduler/scheduler_config.json"):
        try:
            found[name] = Path(hf_hub_download(src, name, revision=revision))
        except Exception as err:  # noqa: BLE001 - absent files are normal; a missing repo is reported below
            logger.debug("%s: no %s (%s)", src, name, type(err).__name__)
    if not found:
        raise not_found_error(
            [("model", src)], "the Hugging Face hub has no such repository (or denied access)"
        )
    snapshot = next(iter(found.values())).parent
    snapshot = snapshot.parent if snapshot.name in ("unet", "scheduler") else snapshot
    return family_of_folder(snapshot)


def check_supported(family: BaseFamily, ref: str) -> None:
    """Raise UnsupportedModelError for a reference that cannot be a base model (a ControlNet). SD 1.x, SD 2.x
    (epsilon and v-prediction) and SDXL bases are supported; "other" families are left to diffusers to load."""
    if family == "controlnet":
        raise UnsupportedModelError(f"'{ref}' is a ControlNet, not a base model: pass it with --controlnet")
