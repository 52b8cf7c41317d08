"""Eagle prompt (spec 3.5): chat template, image placeholders, tokenization and left padding.

Rendered text for V images and language TEXT (add_generation_prompt=True):
  <|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n
  <image 1><img>{<IMG_CONTEXT> x 256}</img><image 2>...TEXT<|im_end|>\n<|im_start|>assistant\n
(the template writes `<image-k>`; the processor replaces it by `<image k><img>...</img>`).
Training uses the plain language string; `inference_language_quirk=True` formats it as
`str([text])` ("['pick up the cube']") like the original Gr00tPolicy at inference.
"""

from __future__ import annotations

import re

import numpy as np

from groot_jax.data.errors import DataError

IMG_CONTEXT = "<IMG_CONTEXT>"
IMG_START, IMG_END = "<img>", "</img>"
TOKENS_PER_IMAGE = 256
DEFAULT_LANGUAGE = "Perform the default behavior."

# Jinja template equal in output to the original's chat_template.json for a single user turn.
EAGLE_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "{% set image_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}{% set image_count.value = image_count.value + 1 %}"
    "<image-{{ image_count.value }}>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_PLACEHOLDER = re.compile(r"<image-(\d+)>")


def format_language(text, inference_language_quirk: bool = False) -> str:
    if isinstance(text, (list, tuple)):
        text = text[0] if text else None
    if isinstance(text, bytes):
        text = text.decode()
    if text is None or (isinstance(text, str) and text == ""):
        text = DEFAULT_LANGUAGE
    return str([text]) if inference_language_quirk else str(text)


def render_prompt(
    tokenizer, num_images: int, text: str, tokens_per_image: int = TOKENS_PER_IMAGE
) -> str:
    """Chat-template text with image placeholders expanded."""
    content = [{"type": "image"} for _ in range(num_images)] + [{"type": "text", "text": text}]
    messages = [{"role": "user", "content": content}]
    template = getattr(tokenizer, "chat_template", None) or EAGLE_CHAT_TEMPLATE
    s = tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, add_generation_prompt=True
    )
    block = IMG_CONTEXT * tokens_per_image
    return _PLACEHOLDER.sub(lambda m: f"<image {m.group(1)}>{IMG_START}{block}{IMG_END}", s)


class PromptTokenizer:
    """Wraps a transformers tokenizer loaded from a checkpoint directory.

    __call__(num_images, text) -> int32 [L] token ids (no padding). Checks the number of
    <IMG_CONTEXT> ids equals num_images * tokens_per_image.
    """

    def __init__(
        self,
        path_or_tokenizer,
        tokens_per_image: int = TOKENS_PER_IMAGE,
        expected_image_token_id: int | None = None,
    ):
        if isinstance(path_or_tokenizer, str) or hasattr(path_or_tokenizer, "__fspath__"):
            from transformers import AutoTokenizer

            self.path = str(path_or_tokenizer)
            self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        else:
            self.path = None
            self.tokenizer = path_or_tokenizer
        self.tokens_per_image = tokens_per_image
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(IMG_CONTEXT)
        unk = getattr(self.tokenizer, "unk_token_id", None)
        if self.image_token_id is None or (unk is not None and self.image_token_id == unk):
            raise DataError(f"tokenizer {self.path}: no {IMG_CONTEXT} token")
        if expected_image_token_id is not None and self.image_token_id != expected_image_token_id:
            raise DataError(
                f"tokenizer {self.path}: {IMG_CONTEXT} id {self.image_token_id} differs from "
                f"the model config's image_token_index {expected_image_token_id}"
            )
        pad = self.tokenizer.pad_token_id
        if pad is None:
            raise DataError(f"tokenizer {self.path}: no pad token")
        self.pad_token_id = int(pad)

    def __getstate__(self):
        return {
            "path": self.path,
            "tokenizer": self.tokenizer,
            "tokens_per_image": self.tokens_per_image,
            "image_token_id": self.image_token_id,
            "pad_token_id": self.pad_token_id,
        }

    def __setstate__(self, s):
        self.__dict__.update(s)

    def __call__(self, num_images: int, text: str) -> np.ndarray:
        s = render_prompt(self.tokenizer, num_images, text, self.tokens_per_image)
        ids = np.asarray(self.tokenizer(s, add_special_tokens=False)["input_ids"], np.int32)
        n_img = int((ids == self.image_token_id).sum())
        if n_img != num_images * self.tokens_per_image:
            raise DataError(
                f"prompt has {n_img} {IMG_CONTEXT} tokens, expected "
                f"{num_images * self.tokens_per_image} (does the tokenizer split it?)"
            )
        return ids


def left_pad(seqs: list[np.ndarray], pad_id: int, length: int | None = None):
    """Left padding: (input_ids int32 [B, L], attention_mask bool [B, L]).
    `length` fixes L (static shapes under jit); a longer sequence raises DataError."""
    longest = max(len(s) for s in seqs)
    L = longest if length is None else length
    if longest > L:
        raise DataError(f"prompt of {longest} tokens exceeds max_seq_len {L}")
    ids = np.full((len(seqs), L), pad_id, np.int32)
    mask = np.zeros((len(seqs), L), bool)
    for i, s in enumerate(seqs):
        if len(s):
            ids[i, L - len(s) :] = s
            mask[i, L - len(s) :] = True
    return ids, mask


def check_model_config(tokenizer: PromptTokenizer, model_cfg, data_cfg=None) -> None:
    """Where tokenizer, data config and model config meet: the <IMG_CONTEXT> id must equal
    `backbone.image_token_index`, the tokens per image the backbone's, and the data config's
    padding widths and action horizon the action head's. DataError naming the mismatch otherwise."""
    bb, ah = model_cfg.backbone, model_cfg.action_head
    if tokenizer.image_token_id != bb.image_token_index:
        raise DataError(
            f"tokenizer {tokenizer.path}: {IMG_CONTEXT} id {tokenizer.image_token_id} != model "
            f"backbone.image_token_index {bb.image_token_index}"
        )
    if tokenizer.tokens_per_image != bb.tokens_per_image:
        raise DataError(
            f"prompt uses {tokenizer.tokens_per_image} tokens per image, the backbone "
            f"produces {bb.tokens_per_image}"
        )
    if data_cfg is not None:
        for name, d, m in (
            ("max_state_dim", data_cfg.max_state_dim, ah.max_state_dim),
            ("max_action_dim", data_cfg.max_action_dim, ah.action_dim),
            ("action horizon", len(data_cfg.action_indices), ah.action_horizon),
        ):
            if d != m:
                raise DataError(f"data config {data_cfg.name}: {name} {d} != model {m}")


def train_tiny_tokenizer(out, corpus: list[str], vocab_size: int = 400,
                         chat_template: str | None = None):
    """A small byte-level BPE with the Eagle special tokens and chat template (`chat_template`,
    default EAGLE_CHAT_TEMPLATE), saved in the Hugging Face layout: for demos, experiments and
    tests that train a model from scratch (a real checkpoint ships its own Qwen3 tokenizer).
    Returns the directory."""
    from pathlib import Path

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<|im_start|>", "<|im_end|>", IMG_START, IMG_END, IMG_CONTEXT, "<|endoftext|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    text = list(corpus) + ["You are a helpful assistant.", "system user assistant image",
                           DEFAULT_LANGUAGE] + [str([c]) for c in corpus]
    tok.train_from_iterator(text * 10, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|endoftext|>",
                                   eos_token="<|im_end|>", additional_special_tokens=special[:5])
    fast.chat_template = chat_template or EAGLE_CHAT_TEMPLATE
    fast.save_pretrained(Path(out))
    return Path(out)
