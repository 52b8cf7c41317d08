"""The prompt: chat template, image placeholders, tokenization and left padding, in the two
formats GR00T's backbones read (`PromptTokenizer.prompt_format`, found from the tokenizer's
image token; a model config's `backbone.prompt_format` must agree: `check_model_config`).

"eagle" (N1 / N1.5, spec 3.5), rendered for V images and language TEXT (add_generation_prompt):

Rendered text for V images and language TEXT (add_generation_prompt=True):
  <|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n
  <image 1><img>{<IMG_CONTEXT> x 256}</img><image 2>...TEXT<|im_end|>\n<|im_start|>assistant\n
(the template writes `<image-k>`; the processor replaces it by `<image k><img>...</img>`).
Training uses the plain language string; `inference_language_quirk=True` formats it as
`str([text])` ("['pick up the cube']") like the original Gr00tPolicy at inference.

"qwen3_vl" (N1.7, N1.7 spec 4): one user turn, images first, add_generation_prompt=False:
  <|im_start|>user\n<|vision_start|>{<|image_pad|> x tokens_per_image}<|vision_end|>...TEXT
  <|im_end|>\n
with TEXT lowercased and stripped of punctuation (lerobot 0.6.1 `formalize_language`; empty ->
"Perform the task."). A real checkpoint's tokenizer brings its own chat template, used instead
of QWEN3_VL_CHAT_TEMPLATE (which only reproduces the layout above for a single user turn).
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

IMAGE_PAD, VISION_START, VISION_END = "<|image_pad|>", "<|vision_start|>", "<|vision_end|>"
N17_DEFAULT_LANGUAGE = "Perform the task."
QWEN3_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
VIDEO_PAD = "<|video_pad|>"
# Special tokens a backbone config names besides the image token, by config field.
SPECIAL_TOKEN_FIELDS = {"eagle": {},
                        "qwen3_vl": {"video_token_id": VIDEO_PAD,
                                     "vision_start_token_id": VISION_START,
                                     "vision_end_token_id": VISION_END}}
# prompt format -> (image token, built-in chat template, add_generation_prompt)
PROMPT_FORMATS = {"eagle": (IMG_CONTEXT, EAGLE_CHAT_TEMPLATE, True),
                  "qwen3_vl": (IMAGE_PAD, QWEN3_VL_CHAT_TEMPLATE, False)}


def formalize_language(text: str) -> str:
    """N1.7's instruction normalisation (lerobot 0.6.1 `prepare_n1_7_language_batch`): an empty
    instruction becomes N17_DEFAULT_LANGUAGE; then lowercase, keeping only alphanumerics,
    whitespace and '_'."""
    text = str(text) if text else N17_DEFAULT_LANGUAGE
    return "".join(ch for ch in text.lower() if ch.isalnum() or ch.isspace() or ch == "_")


def format_language(text, inference_language_quirk: bool = False) -> str:
    if isinstance(text, (list, tuple)):
        text = text[0] if text else None
    if isinstance(text, bytes):
        text = text.decode()
    if text is None or (isinstance(text, str) and text == ""):
        text = DEFAULT_LANGUAGE
    return str([text]) if inference_language_quirk else str(text)


def render_prompt(
    tokenizer, num_images: int, text: str, tokens_per_image: int = TOKENS_PER_IMAGE,
    prompt_format: str = "eagle",
) -> str:
    """Chat-template text with image placeholders expanded."""
    if prompt_format == "qwen3_vl":
        # format_language fills a missing instruction with N1.5's default; N1.7 has its own.
        if text in (DEFAULT_LANGUAGE, str([DEFAULT_LANGUAGE])):
            text = N17_DEFAULT_LANGUAGE
        text = formalize_language(text)
    image_token, default_template, generation_prompt = PROMPT_FORMATS[prompt_format]
    content = [{"type": "image"} for _ in range(num_images)] + [{"type": "text", "text": text}]
    messages = [{"role": "user", "content": content}]
    template = getattr(tokenizer, "chat_template", None) or default_template
    s = tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, add_generation_prompt=generation_prompt
    )
    if prompt_format == "qwen3_vl":
        return s.replace(IMAGE_PAD, IMAGE_PAD * tokens_per_image)
    block = IMG_CONTEXT * tokens_per_image
    return _PLACEHOLDER.sub(lambda m: f"<image {m.group(1)}>{IMG_START}{block}{IMG_END}", s)


def _token_id(tokenizer, token: str) -> int | None:
    tid = tokenizer.convert_tokens_to_ids(token)
    unk = getattr(tokenizer, "unk_token_id", None)
    return None if tid is None or (unk is not None and tid == unk) else int(tid)


class PromptTokenizer:
    """Wraps a transformers tokenizer loaded from a checkpoint directory.

    __call__(num_images, text) -> int32 [L] token ids (no padding). Checks the number of
    image-token ids equals num_images * tokens_per_image. `prompt_format` None: "qwen3_vl" when
    the tokenizer has <|image_pad|> and no <IMG_CONTEXT>, else "eagle".
    """

    def __init__(
        self,
        path_or_tokenizer,
        tokens_per_image: int = TOKENS_PER_IMAGE,
        expected_image_token_id: int | None = None,
        prompt_format: str | None = None,
    ):
        if isinstance(path_or_tokenizer, str) or hasattr(path_or_tokenizer, "__fspath__"):
            from transformers import AutoTokenizer

            self.path = str(path_or_tokenizer)
            self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        else:
            self.path = None
            self.tokenizer = path_or_tokenizer
        self.tokens_per_image = tokens_per_image
        if prompt_format is None:
            qwen = (_token_id(self.tokenizer, IMAGE_PAD) is not None
                    and _token_id(self.tokenizer, IMG_CONTEXT) is None)
            prompt_format = "qwen3_vl" if qwen else "eagle"
        if prompt_format not in PROMPT_FORMATS:
            raise DataError(f"prompt format {prompt_format!r}; known: {sorted(PROMPT_FORMATS)}")
        self.prompt_format = prompt_format
        self.image_token = PROMPT_FORMATS[prompt_format][0]
        self.image_token_id = _token_id(self.tokenizer, self.image_token)
        if self.image_token_id is None:
            raise DataError(f"tokenizer {self.path}: no {self.image_token} token")
        if expected_image_token_id is not None and self.image_token_id != expected_image_token_id:
            raise DataError(
                f"tokenizer {self.path}: {self.image_token} id {self.image_token_id} differs "
                f"from the model config's image_token_index {expected_image_token_id}"
            )
        pad = self.tokenizer.pad_token_id
        if pad is None:
            raise DataError(f"tokenizer {self.path}: no pad token")
        self.pad_token_id = int(pad)

    def special_token_ids(self) -> dict[str, int]:
        """The backbone config's other special-token fields, as this tokenizer numbers them
        (for `BackboneConfig.with_vocab`); DataError if one is missing."""
        out = {}
        for field, token in SPECIAL_TOKEN_FIELDS[self.prompt_format].items():
            tid = _token_id(self.tokenizer, token)
            if tid is None:
                raise DataError(f"tokenizer {self.path}: no {token} token")
            out[field] = tid
        return out

    def __getstate__(self):
        return {
            "path": self.path,
            "tokenizer": self.tokenizer,
            "tokens_per_image": self.tokens_per_image,
            "image_token_id": self.image_token_id,
            "pad_token_id": self.pad_token_id,
            "prompt_format": self.prompt_format,
            "image_token": self.image_token,
        }

    def __setstate__(self, s):
        self.__dict__.update(s)

    def __call__(self, num_images: int, text: str) -> np.ndarray:
        s = render_prompt(self.tokenizer, num_images, text, self.tokens_per_image,
                          self.prompt_format)
        ids = np.asarray(self.tokenizer(s, add_special_tokens=False)["input_ids"], np.int32)
        n_img = int((ids == self.image_token_id).sum())
        if n_img != num_images * self.tokens_per_image:
            raise DataError(
                f"prompt has {n_img} {self.image_token} tokens, expected "
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
    if tokenizer.prompt_format != bb.prompt_format:
        raise DataError(
            f"tokenizer {tokenizer.path} writes {tokenizer.prompt_format!r} prompts; the model's "
            f"backbone reads {bb.prompt_format!r} (an {bb.prompt_format} tokenizer is needed)"
        )
    if tokenizer.image_token_id != bb.image_token_id:
        raise DataError(
            f"tokenizer {tokenizer.path}: image token id {tokenizer.image_token_id} != model "
            f"backbone's image token id {bb.image_token_id}"
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
                         chat_template: str | None = None, prompt_format: str = "eagle"):
    """A small byte-level BPE with the special tokens and chat template of `prompt_format`
    (`chat_template` overrides the template), saved in the Hugging Face layout: for demos,
    experiments and tests that train a model from scratch (a real checkpoint ships its own
    Qwen3 / Qwen3-VL tokenizer). Returns the directory."""
    from pathlib import Path

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if prompt_format == "qwen3_vl":
        special = ["<|im_start|>", "<|im_end|>", VISION_START, VISION_END, IMAGE_PAD,
                   VIDEO_PAD, "<|endoftext|>"]
        corpus = [formalize_language(c) for c in corpus] + [N17_DEFAULT_LANGUAGE.lower()]
    else:
        special = ["<|im_start|>", "<|im_end|>", IMG_START, IMG_END, IMG_CONTEXT,
                   "<|endoftext|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    text = list(corpus) + ["You are a helpful assistant.", "system user assistant image",
                           DEFAULT_LANGUAGE] + [str([c]) for c in corpus]
    tok.train_from_iterator(text * 10, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|endoftext|>",
                                   eos_token="<|im_end|>", additional_special_tokens=special[:-1])
    fast.chat_template = chat_template or PROMPT_FORMATS[prompt_format][1]
    fast.save_pretrained(Path(out))
    return Path(out)
