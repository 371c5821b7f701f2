"""The RoBERTa sentiment classifier shared by the study's services, with no download anywhere.

The network is ``transformers``' RobertaForSequenceClassification built from a RobertaConfig
with seeded random weights, so the compute per request is that of the real architecture while
nothing is fetched from the Hub. ``ROBERTA_SIZE`` picks the shape:

    tiny   2 layers,  hidden 64,  vocab 260     ~0.15 M parameters (tests and CI)
    small  4 layers,  hidden 256, vocab 260     ~3 M parameters
    base   12 layers, hidden 768, vocab 50265   ~125 M parameters (roberta-base, the default)

Tokenisation is byte level (UTF-8 bytes -> ids 4..259, with RoBERTa's special ids <s>=0,
<pad>=1, </s>=2), truncated to ``ROBERTA_MAX_TOKENS`` (128). A review of N characters becomes
about N + 2 tokens, three to four times what roberta-base's BPE would make of it, so requests
here cost more than with the real tokenizer; the docs say so.

``MODEL_PATH`` naming a local checkpoint directory loads its weights (and its own tokenizer,
when the directory has one) instead; ``local_files_only`` keeps that offline too.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

# Belt and braces: whatever a checkpoint's config names, never reach for the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

BOS, PAD, EOS, BYTE_OFFSET = 0, 1, 2, 4
LABELS = ("negative", "positive")
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 2,
             "intermediate_size": 256, "vocab_size": 256 + BYTE_OFFSET},
    "small": {"num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 4,
              "intermediate_size": 1024, "vocab_size": 256 + BYTE_OFFSET},
    "base": {"num_hidden_layers": 12, "hidden_size": 768, "num_attention_heads": 12,
             "intermediate_size": 3072, "vocab_size": 50265},
}  # fmt: skip


@dataclass(frozen=True)
class Settings:
    """What the environment (a scenario's ``target.env``) says about the model."""

    size: str
    seed: int
    max_tokens: int
    model_path: str | None

    @classmethod
    def from_env(cls) -> Settings:
        size = os.environ.get("ROBERTA_SIZE", "base")
        if size not in SIZES:
            raise ValueError(f"ROBERTA_SIZE={size!r}: choose one of {', '.join(SIZES)}")
        return cls(
            size=size,
            seed=int(os.environ.get("ROBERTA_SEED", "0")),
            max_tokens=int(os.environ.get("ROBERTA_MAX_TOKENS", "128")),
            model_path=os.environ.get("MODEL_PATH") or None,
        )

    @property
    def key(self) -> str:
        """Names an exported model: the same key means the same weights and graph."""
        source = self.model_path or f"{self.size}-seed{self.seed}"
        return f"{source}-{self.max_tokens}"


class ByteTokenizer:
    """UTF-8 bytes as token ids, wrapped in <s> ... </s>, right-padded to the longest text."""

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        rows = [
            [BOS, *(b + BYTE_OFFSET for b in t.encode()[: self.max_tokens - 2]), EOS] for t in texts
        ]
        width = max(len(row) for row in rows)
        ids = np.full((len(rows), width), PAD, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return ids, mask


class CheckpointTokenizer:
    """A checkpoint's own tokenizer, read from its directory (no download)."""

    def __init__(self, path: str, max_tokens: int) -> None:
        from transformers import AutoTokenizer

        self.inner = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.max_tokens = max_tokens

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        encoded = self.inner(
            texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="np"
        )
        return encoded["input_ids"].astype(np.int64), encoded["attention_mask"].astype(np.int64)


Tokenizer = ByteTokenizer | CheckpointTokenizer


def model_config(settings: Settings, attention: str = "sdpa") -> Any:
    """The network's configuration: roberta-base's shape at ``settings.size``, or the checkpoint's.

    ``attention`` "eager" spells attention out as matmuls and softmax, the pattern
    onnxruntime's transformer optimizer knows how to fuse; "sdpa" is PyTorch's fused kernel.
    """
    from transformers import AutoConfig, RobertaConfig

    if settings.model_path:
        config = AutoConfig.from_pretrained(settings.model_path, local_files_only=True)
    else:
        config = RobertaConfig(
            **SIZES[settings.size],
            max_position_embeddings=514,  # 512 positions after RoBERTa's padding offset
            type_vocab_size=1,
            pad_token_id=PAD,
            bos_token_id=BOS,
            eos_token_id=EOS,
            num_labels=len(LABELS),
            id2label=dict(enumerate(LABELS)),
            label2id={label: i for i, label in enumerate(LABELS)},
        )
    config._attn_implementation = attention
    return config


def build_model(settings: Settings, attention: str = "sdpa") -> Any:
    """RobertaForSequenceClassification in eval mode: seeded random weights, or MODEL_PATH's."""
    import torch
    from transformers import AutoModelForSequenceClassification

    config = model_config(settings, attention)
    if settings.model_path:
        model = AutoModelForSequenceClassification.from_pretrained(
            settings.model_path, config=config, local_files_only=True
        )
    else:
        torch.manual_seed(settings.seed)  # the same weights in every worker and every run
        model = AutoModelForSequenceClassification.from_config(config)
    return model.eval()


def build_tokenizer(settings: Settings) -> Tokenizer:
    if settings.model_path and any(
        os.path.exists(os.path.join(settings.model_path, name))
        for name in ("tokenizer.json", "vocab.json", "tokenizer_config.json")
    ):
        return CheckpointTokenizer(settings.model_path, settings.max_tokens)
    return ByteTokenizer(settings.max_tokens)


def labels_of(config: Any) -> tuple[str, ...]:
    """Label names in logit order (a checkpoint's own, else negative/positive)."""
    id2label = getattr(config, "id2label", None) or dict(enumerate(LABELS))
    return tuple(str(id2label[i]).lower() for i in range(len(id2label)))


def predictions(logits: np.ndarray, labels: tuple[str, ...]) -> list[dict[str, Any]]:
    """Softmax over each row; the top class and its probability."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    result = []
    for row in probabilities:
        best = int(row.argmax())
        score = float(row[best])
        score = round(score, 4) if math.isfinite(score) else 0.0
        result.append({"label": labels[best], "score": score})
    return result


class TorchClassifier:
    """PyTorch FP32 inference, one call per request: the study's baseline."""

    def __init__(self, settings: Settings) -> None:
        import torch

        self.torch = torch
        self.model = build_model(settings)
        self.tokenize = build_tokenizer(settings)
        self.labels = labels_of(self.model.config)

    def __call__(self, texts: list[str]) -> list[dict[str, Any]]:
        ids, mask = self.tokenize(texts)
        with self.torch.inference_mode():
            logits = self.model(
                input_ids=self.torch.from_numpy(ids), attention_mask=self.torch.from_numpy(mask)
            ).logits
        return predictions(logits.float().numpy(), self.labels)
