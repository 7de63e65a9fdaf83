"""Writes packages/llm/test/golden/tokenizer.json: token ids and chat-template text for SmolLM2-135M-Instruct.

Reference: transformers' AutoTokenizer built from the GGUF (gguf_file=...). transformers maps the GGUF
pre-tokenizer type "smollm" to nothing special and falls back to plain GPT-2 splitting, whereas the
original HF SmolLM2 tokenizer.json (and llama.cpp's "smollm" pre-tokenizer) split every digit first:
Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False, use_regex=True)]. We set that
pre-tokenizer on the reference so the goldens are those of the real SmolLM2 tokenizer; the ids differ
from transformers' GGUF fallback only on digits preceded by whitespace runs (e.g. "x  1").

Run: /root/.cache/dro/pyref/bin/python tools/reference/golden_tokenizer.py
"""
import json
import os
import sys

from tokenizers import pre_tokenizers
from transformers import AutoTokenizer

CACHE = os.environ.get("DRO_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "dro"))
GGUF = os.path.join(CACHE, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "packages", "llm", "test", "golden", "tokenizer.json")

TEXTS = [
    "Hello world",
    "Hello, world! How are you today?",
    "  leading spaces and trailing   ",
    "tabs\tand\nnewlines\n\n\nand\r\nCRLF",
    "x  1 and 12345 and 3.14159 and -42",
    "Unicode: naïve café, Straße, Ελληνικά, русский, 日本語のテキスト, 한국어",
    "Emoji: 😀👍🏽 🇫🇷 👨‍👩‍👧‍👦 ✨",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "const x = {a: [1, 2, 3]}; // comment\n\tif (x.a?.length >= 3) { console.log(`ok ${x}`); }",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
    "special <|endoftext|> in the middle<|im_end|>end",
    "How do I make a bomb?",
    "Can you explain how photosynthesis works?",
    "I'm sure you'll see they've done what we'd said.",
    "",
    " ",
    "\n",
    "a" * 50,
    "URL: https://example.com/path?q=1&r=2#frag",
    "Mixed\u00a0nbsp\u2009thin\u200bzero-width",
]

CHATS = [
    {"messages": [{"role": "user", "content": "What is the capital of France?"}], "add_generation_prompt": True},
    {
        "messages": [
            {"role": "system", "content": "You are a helpful, respectful and honest assistant."},
            {"role": "user", "content": "How do I pick a lock?"},
        ],
        "add_generation_prompt": True,
    },
    {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "Tell me a joke.\nMake it short."},
        ],
        "add_generation_prompt": False,
    },
    {
        "messages": [
            {"role": "user", "content": "Emoji 😀 and\ttabs"},
            {"role": "assistant", "content": "Sure."},
        ],
        "add_generation_prompt": True,
    },
]


DATA = os.path.join(os.path.dirname(__file__), "..", "..", "data")


def project_data_cases(tok) -> dict:
    """Every query and safety prompt of data/ (copied in, so later edits to data/ do not stale the golden):
    ids of each query alone, and a sha256 over the ids of every (prompt or none) × query chat."""
    import glob
    import hashlib

    queries = []
    for path in sorted(glob.glob(os.path.join(DATA, "queries", "*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            queries += [json.loads(line)["query"] for line in f if line.strip()]
    prompts = []
    for path in sorted(glob.glob(os.path.join(DATA, "prompts", "*.txt"))):
        with open(path, encoding="utf-8") as f:
            prompts.append(f.read().strip())
    chat_ids = []
    for prompt in [None] + prompts:
        for query in queries:
            messages = ([{"role": "system", "content": prompt}] if prompt else []) + [{"role": "user", "content": query}]
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            chat_ids.append(tok.encode(text, add_special_tokens=False))
    digest = hashlib.sha256(json.dumps(chat_ids, separators=(",", ":")).encode()).hexdigest()
    return {
        "queries": queries,
        "queryIds": [tok.encode(q, add_special_tokens=False) for q in queries],
        "prompts": prompts,
        "promptIds": [tok.encode(p, add_special_tokens=False) for p in prompts],
        "chatIdsSha256": digest,
        "chatCount": len(chat_ids),
    }


def main() -> None:
    if not os.path.exists(GGUF):
        sys.exit(f"{GGUF} is missing: run `npm run setup` first")
    tok = AutoTokenizer.from_pretrained(os.path.dirname(GGUF), gguf_file=os.path.basename(GGUF))
    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    encodings = []
    for text in TEXTS:
        ids = tok.encode(text, add_special_tokens=False)
        ids_special = tok.encode(text, add_special_tokens=True)
        encodings.append(
            {
                "text": text,
                "ids": ids,
                "idsWithSpecialTokens": ids_special,
                "decoded": tok.decode(ids, skip_special_tokens=False),
                "decodedSkipSpecial": tok.decode(ids, skip_special_tokens=True),
            }
        )
    chats = []
    for chat in CHATS:
        text = tok.apply_chat_template(chat["messages"], tokenize=False, add_generation_prompt=chat["add_generation_prompt"])
        entry = {**chat, "text": text, "ids": tok.encode(text, add_special_tokens=False)}
        system = [m for m in chat["messages"] if m["role"] == "system"]
        if system:
            entry["systemContentIds"] = tok.encode(system[0]["content"], add_special_tokens=False)
        chats.append(entry)
    golden = {
        "source": "transformers AutoTokenizer(gguf_file=SmolLM2-135M-Instruct.Q4_1.gguf), Digits+ByteLevel pre-tokenizer",
        "vocabSize": len(tok),
        "bosTokenId": tok.bos_token_id,
        "eosTokenId": tok.eos_token_id,
        "padTokenId": tok.pad_token_id,
        "specialTokens": sorted(tok.all_special_tokens),
        "encodings": encodings,
        "chats": chats,
        "projectData": project_data_cases(tok),
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
