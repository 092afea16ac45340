# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Backbone files written locally, so the LeRobot VLAs build with no download.

- :func:`train_tokenizer`: a small byte-level BPE tokenizer trained in-process (stands in for
  the gated PaliGemma tokenizer, or SmolVLM's, in tests and latency benchmarks).
- :func:`write_smolvlm_backbone`: a SmolVLM folder (``config.json``, processor, tokenizer) that
  SmolVLA's ``vlm_model_name`` can point at with ``load_vlm_weights=False``: tiny for tests, or
  at the real SmolVLM2-500M dimensions (:data:`SMOLVLM2_500M_DIMS`) for random-initialised
  latency runs.
- :data:`TINY_PALIGEMMA_DIMS` / :data:`PALIGEMMA_REAL_DIMS`: ``backbone_dims`` for the
  ``snapflow_pi0`` / ``snapflow_pi05`` configs (PI0 / PI05 build their PaliGemma in code).

Token ids from a locally trained tokenizer differ from the real ones: fine for tests and for
timing (sequence lengths are what matter), never for running pretrained weights.
"""

from __future__ import annotations

import copy
from pathlib import Path

SMOLVLM_SPECIAL_TOKENS = {
    "fake_image_token": "<fake_token_around_image>",
    "image_token": "<image>",
    "global_image_token": "<global-img>",
    "end_of_utterance_token": "<end_of_utterance>",
}
"""Special tokens SmolVLM's processor and SmolVLA look up on the tokenizer by attribute."""

_CORPUS = (
    "pick up the cube and place it in the bowl",
    "transfer the cube to the other arm",
    "insert the peg into the socket",
    "open the drawer and put the block inside",
    "Task: move the arm to the left, State: 12 200 31 128;\nAction: ",
    "0 1 2 3 4 5 6 7 8 9 10 100 255",
)

SMOLVLM2_500M_DIMS = {
    "text": {"hidden_size": 960, "intermediate_size": 2560, "num_hidden_layers": 32,
             "num_attention_heads": 15, "num_key_value_heads": 5, "head_dim": 64,
             "vocab_size": 49280, "rope_theta": 100000.0, "max_position_embeddings": 8192},
    "vision": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
               "num_attention_heads": 12, "patch_size": 16, "image_size": 512},
    "scale_factor": 4,
}
"""SmolVLM2-500M-Video-Instruct (the SmolVLA backbone): SmolLM2-360M text model, SigLIP-B/16
at 512 px, pixel shuffle 4 (64 image tokens per camera)."""

TINY_SMOLVLM_DIMS = {
    "text": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 4,
             "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
             "vocab_size": 0, "rope_theta": 100000.0, "max_position_embeddings": 512},
    "vision": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
               "num_attention_heads": 2, "patch_size": 16, "image_size": 64},
    "scale_factor": 2,
}
"""A SmolVLM of ~0.1M parameters (``vocab_size`` 0: the tokenizer's size)."""

TINY_PALIGEMMA_DIMS = {
    "vlm": {"width": 32, "depth": 2, "mlp_dim": 64, "num_kv_heads": 1, "head_dim": 8},
    "expert": {"width": 16, "depth": 2, "mlp_dim": 32, "num_kv_heads": 1, "head_dim": 8},
    "vision": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
               "num_attention_heads": 2, "patch_size": 16},
    "vocab_size": 512,
}
"""``backbone_dims`` of a PaliGemma + Gemma expert of ~0.1M parameters (PI0 / PI05 tests)."""

PALIGEMMA_REAL_DIMS = None
"""``backbone_dims`` that keep LeRobot's own (Gemma 2B + Gemma 300M expert, SigLIP So400m)."""


def train_tokenizer(directory: str | Path, *, vocab_size: int = 400,
                    extra_special_tokens: dict[str, str] | None = None) -> Path:
    """Train a byte-level BPE tokenizer in-process; save it (transformers format) in ``directory``.

    ``extra_special_tokens`` become tokenizer attributes (``tokenizer.<name>`` and
    ``<name>_id``), as SmolVLM's processor expects. Returns the directory.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    extra = dict(extra_special_tokens or {})
    special = ["<pad>", "<eos>", "<bos>", "<unk>", *extra.values()]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(list(_CORPUS) * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>",
                                   eos_token="<eos>", bos_token="<bos>", unk_token="<unk>",
                                   extra_special_tokens=extra or None)
    fast.save_pretrained(directory)
    return directory


def write_smolvlm_backbone(directory: str | Path, dims: dict | None = None) -> Path:
    """Write a SmolVLM folder (config, image/video processor, tokenizer) for SmolVLA to build from.

    ``dims`` defaults to :data:`TINY_SMOLVLM_DIMS`; pass :data:`SMOLVLM2_500M_DIMS` for the real
    architecture. No weights are written: build with ``load_vlm_weights=False``.
    """
    from transformers import (
        AutoTokenizer,
        SmolVLMConfig,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
    )

    directory = Path(directory)
    dims = copy.deepcopy(dims or TINY_SMOLVLM_DIMS)
    train_tokenizer(directory, extra_special_tokens=SMOLVLM_SPECIAL_TOKENS)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    text = dict(dims["text"], model_type="llama", rms_norm_eps=1e-5,
                pad_token_id=tokenizer.pad_token_id)
    text["vocab_size"] = max(int(text["vocab_size"]), len(tokenizer))
    vision = dict(dims["vision"])
    scale = int(dims["scale_factor"])
    image_size = int(vision["image_size"])
    tokens_per_image = (image_size // int(vision["patch_size"])) ** 2 // scale**2
    image_processor = SmolVLMImageProcessor(size={"longest_edge": image_size},
                                            max_image_size={"longest_edge": image_size})
    processor = SmolVLMProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                 video_processor=SmolVLMVideoProcessor(),
                                 image_seq_len=tokens_per_image)
    processor.save_pretrained(directory)
    config = SmolVLMConfig(vision_config=vision, text_config=text, scale_factor=scale,
                           image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
                           pad_token_id=tokenizer.pad_token_id)
    config.save_pretrained(directory)
    return directory
