# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""A local Hugging Face cache laid out as ``hf download`` leaves it, for the offline hub tests.

``cache_repo`` copies a folder into a cache as a model repo (content-addressed blobs, a snapshot
of relative links, ``refs/main``); ``offline_cache`` points ``HF_HUB_CACHE`` (or only
``HF_HOME``) at a temporary cache with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

SMOLVLM = "HuggingFaceTB/SmolVLM2-500M-Video-Instruct"
"""The hub id a published SmolVLA config names as its backbone (``vlm_model_name``)."""


def cache_repo(cache: Path, repo_id: str, source: Path) -> Path:
    """``source``'s files as a hub download of ``repo_id`` in ``cache``; the snapshot folder."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    revision = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo / "snapshots" / revision
    for file in sorted(p for p in source.rglob("*") if p.is_file()):
        blob = repo / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, blob)
        link = snapshot / file.relative_to(source)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot


def offline_cache(monkeypatch, tmp_path: Path, style: str) -> Path:
    """An empty hub cache, found through ``HF_HUB_CACHE`` or through ``HF_HOME`` only."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    if style == "HF_HUB_CACHE":
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
        return tmp_path / "cache"
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    return tmp_path / "hf_home" / "hub"
