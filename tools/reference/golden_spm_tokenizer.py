"""Writes a tiny SentencePiece-BPE ("llama" tokenizer model) GGUF and the token ids transformers gives it.

Outputs packages/llm/test/golden/tiny-spm.json: the vocabulary spec, the merges and the ids. The GGUF itself
is not committed (*.gguf is ignored): `write_gguf` below builds it from the spec with gguf-py's GGUFWriter,
and the TypeScript test runs the same function through CI's python3 (gguf, numpy) to get the same file. The vocabulary is made up (no Llama-2 tokenizer is available offline) but
exercises what the conversion must get right: merges derived from scores with ties, byte fallback for
characters outside the vocabulary, a control token inside text, a user-defined token, BOS added by the
post-processor, leading/multiple spaces and decoding.

Run: /root/.cache/dro/pyref/bin/python tools/reference/golden_spm_tokenizer.py
"""
import json
import os
import tempfile


HERE = os.path.dirname(__file__)
GOLDEN = os.path.join(HERE, "..", "..", "packages", "llm", "test", "golden")

PIECES = [
    # (piece, score): equal scores exercise the tie-breaks (longer left piece first, then longer right).
    ("▁", -1.0), ("t", -2.0), ("h", -2.0), ("e", -2.0), ("a", -2.0), ("c", -2.0), ("o", -2.0), ("n", -2.0),
    ("s", -2.0), ("i", -2.0), ("r", -2.0), ("l", -2.0), ("d", -2.0), ("g", -2.0), ("w", -2.0), ("é", -2.5),
    ("▁t", -3.0), ("he", -3.0), ("▁the", -4.0), ("▁a", -4.0), ("at", -5.0), ("▁c", -5.0), ("▁cat", -5.0),
    ("on", -6.0), ("▁on", -6.0), ("in", -6.0), ("▁s", -7.0), ("is", -7.0), ("▁is", -7.0), ("ta", -8.0),
    ("ht", -8.0), ("▁▁", -9.0), ("an", -9.0), ("and", -9.0), ("▁and", -9.5), ("og", -10.0), ("▁d", -10.0),
    ("▁dog", -10.0), ("ré", -11.0), ("▁w", -12.0), ("or", -12.0), ("▁wor", -12.0), ("ld", -12.0), ("▁world", -13.0),
]
TEXTS = [
    "the cat is on the dog",
    " the  cat",
    "and the world",
    "Hello wörld! 😀",
    "café résumé",
    "tahta\nthe\tcat",
    "<s>the cat</s>",
    "dog<|tool|>cat",
    "",
    "   ",
    "the",
]


def spec() -> dict:
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + [p for p, _ in PIECES] + ["<|tool|>"]
    return {
        "tokens": tokens,
        "scores": [0.0] * 259 + [s for _, s in PIECES] + [0.0],
        "types": [2, 3, 3] + [6] * 256 + [1] * len(PIECES) + [4],
        "chatTemplate": "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{{ eos_token }}{% endfor %}",
    }


WRITE_GGUF = """
def write_gguf(spec, path):
    import numpy as np
    from gguf import GGUFWriter
    w = GGUFWriter(path, "llama")
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(8)
    w.add_feed_forward_length(16)
    w.add_head_count(2)
    w.add_tokenizer_model("llama")
    w.add_token_list(spec["tokens"])
    w.add_token_scores(spec["scores"])
    w.add_token_types(spec["types"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_chat_template(spec["chatTemplate"])
    w.add_tensor("token_embd.weight", np.zeros((len(spec["tokens"]), 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
"""


def main() -> None:
    namespace: dict = {}
    exec(WRITE_GGUF, namespace)
    vocab = spec()
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as alone:
        namespace["write_gguf"](vocab, os.path.join(alone, "tiny-spm.gguf"))
        tok = AutoTokenizer.from_pretrained(alone, gguf_file="tiny-spm.gguf")
    encodings = []
    for text in TEXTS:
        ids = tok.encode(text, add_special_tokens=False)
        encodings.append(
            {
                "text": text,
                "ids": ids,
                "idsWithSpecialTokens": tok.encode(text, add_special_tokens=True),
                "decoded": tok.decode(ids, skip_special_tokens=False) if ids else "",
                "decodedSkipSpecial": tok.decode(ids, skip_special_tokens=True) if ids else "",
            }
        )
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        merges = json.load(open(os.path.join(tmp, "tokenizer.json")))["model"]["merges"]
    golden = {
        "source": "transformers AutoTokenizer(gguf_file=tiny-spm.gguf)",
        "writeGgufPython": WRITE_GGUF,
        "spec": vocab,
        "merges": merges,
        "encodings": encodings,
    }
    with open(os.path.join(GOLDEN, "tiny-spm.json"), "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("wrote tiny-spm.json")


if __name__ == "__main__":
    main()
