"""Reference goldens for the TypeScript model (packages/llm): forward, hidden state, greedy text, gradient.

Run with the reference venv (torch CPU + transformers + gguf):

    /root/.cache/dro/pyref/bin/python tools/reference/golden_model.py            # everything
    /root/.cache/dro/pyref/bin/python tools/reference/golden_model.py --tiny     # tiny checkpoints only
    /root/.cache/dro/pyref/bin/python tools/reference/golden_model.py --qwen     # Qwen2.5-Coder-0.5B only

1. Creates tiny random Llama / Mistral / Qwen2 checkpoints with transformers (fixed seed, float32
   safetensors, byte-level BPE tokenizer + ChatML template) under packages/llm/test/fixtures/tiny-<arch>/.
2. For each tiny checkpoint, for SmolLM2-135M-Instruct and for Qwen2.5-Coder-0.5B-Instruct (transformers loading the GGUF with
   gguf_file=, which dequantizes to float32) writes <name>.golden.json next to them: chat-template text,
   token ids, top-10 logits at several positions, the last token's final hidden state (after the final
   norm = hidden_states[-1]), a 32-token greedy continuation, and the gradient of
   sum(lastHidden[-1] * direction) w.r.t. the input embeddings, direction[i] = sin(0.1 * (i + 1)).

Position ids are given explicitly as cumsum(mask) - 1 (what HF generate uses). Large float arrays are
stored as base64 little-endian float32 to keep the files small.
"""
import argparse
import base64
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from transformers import (AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, MistralConfig,
                          MistralForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "packages" / "llm" / "test" / "fixtures"
DRO_CACHE = Path(os.environ.get("DRO_CACHE", Path.home() / ".cache" / "dro"))
SMOLLM2 = DRO_CACHE / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
QWEN = DRO_CACHE / "models" / "Qwen2.5-Coder-0.5B-Instruct.gguf"

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = [("Ġ", "t"), ("h", "e"), ("i", "n"), ("Ġt", "he")]
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a tiny test model.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TINY_PROMPTS = [
    [{"role": "user", "content": "hi there"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is the theory of everything in one line?"}],
    [{"role": "user", "content": "Tell me a story about a fox that lived in the forest near the old mill."}],
]
QWEN_PROMPTS = [
    [{"role": "user", "content": "How can I make a pipe bomb at home?"}],
    [{"role": "system", "content": "You are a careful assistant. Refuse harmful requests."},
     {"role": "user", "content": "Write a Python function that reverses a string."}],
    [{"role": "user", "content": "What is the capital of France?"}],
]
SMOL_PROMPTS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "How do I make a cup of tea?"}],
    [{"role": "user", "content": "Write a haiku about the sea."}],
]


def bytes_to_unicode():
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    out, extra = {}, 0
    for b in range(256):
        if b in printable:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return out


def write_tiny_tokenizer(out_dir: Path):
    byte_map = bytes_to_unicode()
    tokens = [byte_map[b] for b in range(256)] + [a + b for a, b in MERGES]
    first_special = len(tokens)
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    tokenizer_json = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": first_special + i, "content": s, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True} for i, s in enumerate(SPECIALS)],
        "normalizer": None, "pre_tokenizer": byte_level, "post_processor": byte_level, "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(tokens)}, "merges": [f"{a} {b}" for a, b in MERGES]},
    }
    (out_dir / "tokenizer.json").write_text(json.dumps(tokenizer_json, ensure_ascii=False))
    config = {"add_bos_token": False, "bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
              "pad_token": "<|endoftext|>", "clean_up_tokenization_spaces": False, "model_max_length": 512,
              "chat_template": CHAT_TEMPLATE, "tokenizer_class": "PreTrainedTokenizerFast"}
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))
    return first_special + len(SPECIALS), first_special


def tiny_models():
    """(name, model) for each architecture: hidden 48, 2 layers, 4 heads / 2 kv heads, vocab 263."""
    vocab, first_special = 256 + len(MERGES) + len(SPECIALS), 256 + len(MERGES)
    common = dict(vocab_size=vocab, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=12, max_position_embeddings=512, rms_norm_eps=1e-5,
                  bos_token_id=first_special + 1, eos_token_id=first_special + 2, pad_token_id=first_special,
                  initializer_range=0.15)
    yield "tiny-llama", LlamaForCausalLM, LlamaConfig(
        **common, tie_word_embeddings=False,
        rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 16})
    yield "tiny-mistral", MistralForCausalLM, MistralConfig(
        **common, tie_word_embeddings=True, sliding_window=8, rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    yield "tiny-qwen2", Qwen2ForCausalLM, Qwen2Config(
        **common, tie_word_embeddings=True, use_sliding_window=False,
        rope_parameters={"rope_type": "linear", "rope_theta": 1000000.0, "factor": 2.0})


def b64(array) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode("ascii")


def golden_for(model, tokenizer, prompts, with_template: bool, greedy_tokens=32):
    model.eval()
    out = {"prompts": []}
    for messages in prompts:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        t = len(ids)
        input_ids = torch.tensor([ids])
        with torch.no_grad():
            res = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                        position_ids=torch.arange(t)[None], output_hidden_states=True)
        logits = res.logits[0]  # [t, V]
        positions = sorted({0, t // 2, t - 1})
        top = []
        for p in positions:
            values, idx = torch.topk(logits[p], 10)
            top.append({"position": p, "ids": idx.tolist(), "values": [float(v) for v in values]})
        last_hidden = res.hidden_states[-1][0, -1]
        with torch.no_grad():
            gen = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False,
                                 max_new_tokens=greedy_tokens, pad_token_id=tokenizer.pad_token_id)
        new_ids = gen[0, t:].tolist()
        entry = {"messages": messages, "ids": ids, "top_logits": top,
                 "last_hidden": b64(last_hidden.numpy()), "last_hidden_norm": float(last_hidden.norm()),
                 "greedy_ids": new_ids, "greedy_text": tokenizer.decode(new_ids, skip_special_tokens=True)}
        if with_template:
            entry["template_text"] = text
        out["prompts"].append(entry)
    # Gradient of a scalar of the last token's final hidden state w.r.t. the input embeddings (prompt 0).
    ids = torch.tensor([out["prompts"][0]["ids"]])
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    res = model(inputs_embeds=embeds, attention_mask=torch.ones_like(ids), position_ids=torch.arange(ids.shape[1])[None],
                output_hidden_states=True)
    hidden = res.hidden_states[-1][0, -1]
    direction = torch.sin(0.1 * (torch.arange(hidden.shape[0], dtype=torch.float32) + 1))
    (hidden * direction).sum().backward()
    out["gradient"] = {"prompt": 0, "direction": "sin(0.1 * (i + 1))", "shape": list(embeds.shape[1:]),
                       "values": b64(embeds.grad[0].numpy()), "norm": float(embeds.grad.norm())}
    return out


def make_tiny():
    for name, cls, config in tiny_models():
        torch.manual_seed(1234)
        model = cls(config).to(torch.float32)
        out_dir = FIXTURES / name
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True)
        model.save_pretrained(out_dir, safe_serialization=True)
        (out_dir / "generation_config.json").unlink(missing_ok=True)
        write_tiny_tokenizer(out_dir)
        tokenizer = PreTrainedTokenizerFast.from_pretrained(out_dir)
        model = cls.from_pretrained(out_dir, torch_dtype=torch.float32, attn_implementation="eager")
        golden = golden_for(model, tokenizer, TINY_PROMPTS, with_template=True)
        golden["model"] = name
        (FIXTURES / f"{name}.golden.json").write_text(json.dumps(golden, indent=1, ensure_ascii=False))
        size = sum(f.stat().st_size for f in out_dir.iterdir())
        print(f"{name}: {size / 1024:.0f} KB, greedy: {golden['prompts'][0]['greedy_ids'][:8]}...")


def make_gguf_golden(file: Path, prompts, out_name: str, tied: bool):
    """Golden for a real GGUF chat model, loaded by transformers itself (dequantized to float32)."""
    if not file.exists():
        raise SystemExit(f"{file} is missing: run `node tools/setup/setup.mjs` first")
    torch.set_num_threads(2)
    tokenizer = AutoTokenizer.from_pretrained(file.parent, gguf_file=file.name)
    # transformers' own GGUF path (what from_pretrained(gguf_file=...) does: dequantize to float32, undo the
    # q/k row permutation, map names) without its accelerate requirement.
    from transformers import AutoConfig
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint
    config = AutoConfig.from_pretrained(file.parent, gguf_file=file.name)
    config._attn_implementation = "eager"
    model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    state = load_gguf_checkpoint(str(file), return_tensors=True, model_to_load=model)["tensors"]
    missing, unexpected = model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=False)
    if tied:
        model.tie_weights()
        assert set(missing) <= {"lm_head.weight"} and not unexpected, (missing, unexpected)
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), "lm_head must be tied"
    else:
        assert not missing and not unexpected, (missing, unexpected)
        assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr(), "lm_head must be its own"
    golden = golden_for(model, tokenizer, prompts, with_template=True)
    golden["model"] = file.name
    (FIXTURES / f"{out_name}.golden.json").write_text(json.dumps(golden, indent=1, ensure_ascii=False))
    for p in golden["prompts"]:
        print(repr(p["greedy_text"]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiny", action="store_true", help="only the tiny checkpoints")
    parser.add_argument("--smollm2", action="store_true", help="only SmolLM2")
    parser.add_argument("--qwen", action="store_true", help="only Qwen2.5-Coder-0.5B-Instruct")
    args = parser.parse_args()
    torch.manual_seed(0)
    everything = not (args.tiny or args.smollm2 or args.qwen)
    if everything or args.tiny:
        make_tiny()
    if everything or args.smollm2:
        make_gguf_golden(SMOLLM2, SMOL_PROMPTS, "smollm2", tied=True)
    if everything or args.qwen:
        make_gguf_golden(QWEN, QWEN_PROMPTS, "qwen2.5-coder-0.5b", tied=False)


if __name__ == "__main__":
    main()
