"""PyTorch models compresslib did not write, built from code with random weights (offline, small inputs).

Each entry builds a :class:`Case`: a fresh model (``make()`` gives another instance of the
same architecture, the way a user rebuilds their class before loading a file), one input
batch in the form the model takes, and calibration batches.

Hugging Face ``transformers`` models return ``ModelOutput`` (a dict subclass) and take
keyword inputs; the custom model takes a dict, returns a dataclass, branches on a tensor
value and reads its own layers' attributes in ``forward``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn


@dataclass
class Case:
    name: str
    make: Callable[[], nn.Module]
    example: Any
    calibration: Any
    kind: str  # "image" | "text" | "custom"

    def model(self) -> nn.Module:
        return self.make()


def _seeded(builder: Callable[[], nn.Module], seed: int = 0) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        torch.manual_seed(seed)
        return builder().eval()
    return make


def _tokens(n: int, length: int = 12, vocab: int = 100, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"input_ids": torch.randint(1, vocab, (n, length), generator=g),
            "attention_mask": torch.ones(n, length, dtype=torch.long)}


def _pixels(n: int, size: int = 32, seed: int = 1, key: str = "pixel_values") -> dict:
    g = torch.Generator().manual_seed(seed)
    return {key: torch.randn(n, 3, size, size, generator=g)}


# --------------------------------------------------------------------------- Hugging Face transformers

def _hf(name: str) -> Callable[[], nn.Module]:
    import transformers as tr

    builders = {
        "hf_bert": lambda: tr.BertForSequenceClassification(tr.BertConfig(
            vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=32, num_labels=3)),
        "hf_distilbert": lambda: tr.DistilBertForSequenceClassification(tr.DistilBertConfig(
            vocab_size=100, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=32, num_labels=3)),
        "hf_gpt2": lambda: tr.GPT2ForSequenceClassification(tr.GPT2Config(
            vocab_size=100, n_embd=32, n_layer=2, n_head=2, n_positions=32, num_labels=3, pad_token_id=0,
            bos_token_id=1, eos_token_id=2)),
        "hf_vit": lambda: tr.ViTForImageClassification(tr.ViTConfig(
            image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, num_labels=10)),
        "hf_resnet": lambda: tr.ResNetForImageClassification(tr.ResNetConfig(
            embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], num_labels=10)),
        "hf_mobilenet_v2": lambda: tr.MobileNetV2ForImageClassification(tr.MobileNetV2Config(
            image_size=32, depth_multiplier=0.35, num_labels=10)),
        "hf_convnext": lambda: tr.ConvNextForImageClassification(tr.ConvNextConfig(
            num_stages=2, hidden_sizes=[16, 32], depths=[1, 1], num_labels=10)),
        "hf_swin": lambda: tr.SwinForImageClassification(tr.SwinConfig(
            image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4,
            num_labels=10)),
    }
    return builders[name]


# --------------------------------------------------------------------------- torch.nn architectures


class TransformerTextClassifier(nn.Module):
    """``nn.TransformerEncoder`` over token embeddings, mean-pooled, then a linear head."""

    def __init__(self, vocab: int = 100, dim: int = 32, classes: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        layer = nn.TransformerEncoderLayer(dim, 2, 64, batch_first=True, dropout=0.0)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(dim, classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.embed(input_ids), src_key_padding_mask=attention_mask == 0)
        return self.head(h.mean(1))


class RecurrentClassifier(nn.Module):
    """Embedding → LSTM → GRU → linear head on the last step."""

    def __init__(self, vocab: int = 100, dim: int = 16, hidden: int = 32, classes: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.embed(input_ids))
        h, _ = self.gru(h)
        return self.head(h[:, -1])


@dataclasses.dataclass
class CustomOutput:
    logits: torch.Tensor
    features: torch.Tensor


class CustomDictModel(nn.Module):
    """Dict input, dataclass output, data-dependent Python, and code that reads its own layers."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 24, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(24)
        self.fc = nn.Linear(24, 10)

    def forward(self, batch: dict) -> CustomOutput:
        x = batch["image"]
        if float(x.abs().mean()) > 10.0:  # data-dependent control flow: no symbolic tracer follows it
            x = x / x.abs().amax()
        size = x.shape[-1] // self.conv.stride[0]  # reads a layer attribute
        h = torch.relu(self.bn(self.conv(x)))
        h = torch.relu(self.bn2(self.conv2(h)))
        feats = nn.functional.adaptive_avg_pool2d(h, 1).flatten(1)
        assert h.shape[-1] == size
        return CustomOutput(logits=self.fc(feats), features=feats)


def _custom_batch(n: int, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"batch": {"image": torch.randn(n, 3, 32, 32, generator=g)}}


# --------------------------------------------------------------------------- the zoo

TEXT = ("hf_bert", "hf_distilbert", "hf_gpt2")
# hf_mobilenet_v2 is built too (MobileNetV2ForImageClassification) but left out of the matrix: its
# random-init logits underflow (~1e-30), so agreement is meaningless, and its PT2E export alone costs
# minutes of the CI budget; ConvNeXt covers depthwise convolutions.
IMAGE = ("hf_vit", "hf_resnet", "hf_convnext", "hf_swin")
NAMES = TEXT + IMAGE + ("torch_transformer", "torch_recurrent", "custom_dict")


def case(name: str) -> Case:
    """The :class:`Case` for ``name`` (one of :data:`NAMES`)."""
    if name in TEXT:
        return Case(name, _seeded(_hf(name)), _tokens(4), _tokens(32, seed=2), "text")
    if name in IMAGE or name == "hf_mobilenet_v2":
        return Case(name, _seeded(_hf(name)), _pixels(4), _pixels(32, seed=2), "image")
    if name == "torch_transformer":
        return Case(name, _seeded(TransformerTextClassifier), _tokens(4), _tokens(32, seed=2), "text")
    if name == "torch_recurrent":
        return Case(name, _seeded(RecurrentClassifier), _tokens(4), _tokens(32, seed=2), "text")
    if name == "custom_dict":
        return Case(name, _seeded(CustomDictModel), _custom_batch(4), _custom_batch(32, seed=2), "custom")
    raise ValueError(f"name must be one of {NAMES}, got {name!r}")
