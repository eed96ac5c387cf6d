"""A tiny CLIP (random weights, ViT with 224 px input and 32 px patches like ViT-B/32, 2 layers of
width 32, 512-d projection) and a byte-level BPE tokenizer built from a written vocab.json and
merges.txt, saved with `save_pretrained` so tests load it through reelbeam's real path.
No download: everything is made here."""

import json
import os

import torch


def _byte_chars() -> list[str]:
    """The 256 printable stand-ins for bytes that byte-level BPE (GPT-2, CLIP) uses."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return [chr(c) for c in cs]


MERGES = ["r u", "ru n</w>", "p e", "pe r", "per s", "pers o", "perso n</w>"]


def write_tokenizer_files(folder: str) -> int:
    """vocab.json (every byte, alone and word-final, a few merges, then <|startoftext|> and
    <|endoftext|> last as in OpenAI's vocabulary) and merges.txt. Returns the vocabulary size."""
    chars = _byte_chars()
    vocab = chars + [c + "</w>" for c in chars]
    for m in MERGES:
        vocab.append(m.replace(" ", ""))
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f)
    with open(os.path.join(folder, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n" + "\n".join(MERGES) + "\n")
    return len(vocab)


def tiny_clip_config(vocab_size: int, projection_dim: int = 512):
    from transformers import CLIPConfig

    text = {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 77,
        "bos_token_id": vocab_size - 2,
        "eos_token_id": vocab_size - 1,
        "pad_token_id": vocab_size - 1,
    }
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 224,
        "patch_size": 32,
    }
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)


def save_tiny_clip(folder: str, seed: int = 0, projection_dim: int = 512) -> str:
    """CLIPModel + CLIPTokenizer in `folder` (save_pretrained); returns `folder`."""
    from transformers import CLIPModel, CLIPTokenizer

    vocab_dir = os.path.join(folder, "_vocab")
    vocab_size = write_tokenizer_files(vocab_dir)
    tokenizer = CLIPTokenizer.from_pretrained(vocab_dir)
    torch.manual_seed(seed)
    model = CLIPModel(tiny_clip_config(vocab_size, projection_dim)).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    for name in os.listdir(vocab_dir):
        os.remove(os.path.join(vocab_dir, name))
    os.rmdir(vocab_dir)
    return folder


def vit_b32_config():
    """The configuration of openai/clip-vit-base-patch32 (for benchmarks: random weights)."""
    from transformers import CLIPConfig

    text = {
        "vocab_size": 49408,
        "hidden_size": 512,
        "intermediate_size": 2048,
        "num_hidden_layers": 12,
        "num_attention_heads": 8,
        "max_position_embeddings": 77,
        "hidden_act": "quick_gelu",
    }
    vision = {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "image_size": 224,
        "patch_size": 32,
        "hidden_act": "quick_gelu",
    }
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=512)
