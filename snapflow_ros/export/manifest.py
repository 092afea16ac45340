# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The ``manifest.json`` of an ONNX export folder: what each graph expects and what it matched.

An export folder is self-contained::

    manifest.json          this file: policy type, robot interface, normalisation, chunk size,
                           opset, source checkpoint hash, every graph's inputs / outputs, the
                           round-trip errors measured at export time
    one_step.onnx          1-NFE chunk: images, state (, environment_state), noise -> actions
                           (each graph may keep its weights beside it in <graph>.onnx.data)
    prefix.onnx            observation -> context tensors (run once per chunk)
    expert.onnx            x, s, t, context -> average velocity F (run once per step)
    actions.onnx           normalised chunk -> robot units
    *.int8.onnx            the same graphs with int8 weights (``--quantize dynamic``)
    tokenizer.json         PI05 only: the tokenizer of its state prompt, which the runner builds
                           (the manifest's ``state_prompt``: :mod:`snapflow_ros.export.
                           prompt_tokens`); its graphs take ``prompt_tokens`` / ``prompt_mask``
                           instead of ``state``

Every tensor is described as ``{"name", "role", "shape", "dtype"}``; a dimension named
``"batch"`` is dynamic. Numpy-free and torch-free, so a robot with only onnxruntime reads it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from snapflow_ros.config_fields import ConfigError

MANIFEST_FILE = "manifest.json"
FORMAT = "snapflow-onnx"
FORMAT_VERSION = 1
GRAPH_ROLES = ("one_step", "prefix", "expert", "actions")
"""The graphs of a folder: the 1-NFE chunk, then the three k-step pieces."""
PRECISIONS = ("float32", "int8")
BATCH_DIM = "batch"
"""The name of a dynamic batch dimension in a tensor's ``shape``."""


class ExportFolderError(ConfigError):
    """An export folder is missing, incomplete, corrupt, or failed its round-trip check."""


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: str | Path, manifest: dict) -> Path:
    """Write ``manifest`` as ``folder/manifest.json`` (replacing it atomically)."""
    path = Path(folder) / MANIFEST_FILE
    tmp = path.with_name(f".{MANIFEST_FILE}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def graph_path(folder: str | Path, manifest: dict, role: str, precision: str = "float32") -> Path:
    """The file of graph ``role`` (one of :data:`GRAPH_ROLES`) in ``precision``."""
    files = manifest["graphs"][role]["files"]
    if precision not in files:
        raise ExportFolderError(
            f"{folder} has no {precision} {role} graph (has {', '.join(sorted(files))}); "
            + ("export it with --quantize dynamic" if precision == "int8" else ""))
    return Path(folder) / files[precision]["file"]


def read_manifest(folder: str | Path, *, verify_hashes: bool = True) -> dict:
    """The validated manifest of export ``folder``.

    Raises :class:`ExportFolderError` naming the problem: no folder, no or bad manifest, a
    missing or changed graph file (``verify_hashes``), or a float32 round-trip that failed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ExportFolderError(f"ONNX export folder does not exist: {folder}")
    path = folder / MANIFEST_FILE
    if not path.is_file():
        hint = (" (that is a checkpoint: export it with `snapflow export onnx --checkpoint "
                f"{folder} --out DIR`)" if (folder / "config.json").is_file() else "")
        raise ExportFolderError(f"{folder} is not an ONNX export folder: no {MANIFEST_FILE}"
                                + hint)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ExportFolderError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ExportFolderError(f"{path}: not a {FORMAT} manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ExportFolderError(f"{path}: format_version {version!r}; this package reads "
                                f"up to {FORMAT_VERSION}")
    missing = [key for key in ("policy_type", "robot", "chunk_size", "action_dim", "graphs",
                               "round_trip") if key not in manifest]
    missing += [f"graphs.{role}" for role in GRAPH_ROLES
                if role not in manifest.get("graphs", {})]
    if missing:
        raise ExportFolderError(f"{path}: missing {', '.join(missing)}")
    for role in GRAPH_ROLES:
        for precision, entry in manifest["graphs"][role]["files"].items():
            graph = folder / entry["file"]
            if not graph.is_file():
                raise ExportFolderError(f"{folder}: {precision} {role} graph missing: {graph}")
            if verify_hashes and file_sha256(graph) != entry["sha256"]:
                raise ExportFolderError(f"{graph}: contents differ from the manifest's sha256 "
                                        "(changed or truncated after export)")
            if "data_file" in entry:
                # Gigabytes: the size is checked on every load, the recorded sha256 on request.
                data = folder / entry["data_file"]
                size = data.stat().st_size if data.is_file() else None
                if size != entry["data_bytes"]:
                    raise ExportFolderError(
                        f"{data}: external weights of {graph.name} "
                        + ("missing" if size is None else
                           f"have {size} bytes, the export wrote {entry['data_bytes']}"))
    prompt = manifest.get("state_prompt")
    if prompt:
        tokenizer = folder / prompt.get("tokenizer_file", "tokenizer.json")
        if not tokenizer.is_file():
            raise ExportFolderError(f"{folder}: the state prompt's tokenizer is missing: "
                                    f"{tokenizer}")
        if verify_hashes and file_sha256(tokenizer) != prompt.get("tokenizer_sha256"):
            raise ExportFolderError(f"{tokenizer}: contents differ from the manifest's sha256")
    check = manifest["round_trip"].get("float32", {})
    if not check.get("passed", False):
        raise ExportFolderError(
            f"{path}: the float32 graphs did not match PyTorch at export time (max error "
            f"{check.get('max_error_of_range')!r} of the action range, tolerance "
            f"{manifest['round_trip'].get('tolerance_of_range')!r}); export again")
    return manifest


def image_input_name(camera_key: str) -> str:
    """The graph input of camera ``camera_key``: ``image_<key>`` (other characters as ``_``)."""
    return "image_" + re.sub(r"[^0-9A-Za-z_]", "_", camera_key)


def tensor_spec(name: str, role: str, shape: list[Any], dtype: str, **extra: Any) -> dict:
    """One input / output description: ``shape`` entries are ints or :data:`BATCH_DIM`."""
    return {"name": name, "role": role, "shape": list(shape), "dtype": dtype, **extra}
