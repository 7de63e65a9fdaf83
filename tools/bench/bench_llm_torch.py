"""PyTorch-CPU side of `npm run bench:llm`: transformers on the same SmolLM2 GGUF (dequantized to float32).

Prints one JSON object: prefill / decode / sampled decode / train tokens per second and peak RSS, measured exactly like
tools/bench/bench-llm.ts measures the TypeScript runtime (same shapes, same thread count).
"""
import argparse
import json
import resource
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM
from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint


def load(path: str):
    directory, name = path.rsplit("/", 1)
    config = AutoConfig.from_pretrained(directory, gguf_file=name)
    config._attn_implementation = "sdpa"
    model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    state = load_gguf_checkpoint(path, return_tensors=True, model_to_load=model)["tensors"]
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=False)
    model.tie_weights()
    return model.eval()


CPU_SECONDS = {}


def timed(fn, label=None):
    """Wall seconds of fn; process CPU seconds (all threads) recorded under label."""
    cpu_start = time.process_time()
    start = time.perf_counter()
    fn()
    wall = time.perf_counter() - start
    if label is not None:
        CPU_SECONDS[label] = time.process_time() - cpu_start
    return wall


def median_timed(fn, label, repeats):
    """Median wall seconds of `repeats` runs; CPU seconds of the median run under label."""
    runs = []
    for _ in range(repeats):
        wall = timed(fn, label)
        runs.append((wall, CPU_SECONDS[label]))
    runs.sort()
    wall, cpu = runs[len(runs) // 2]
    CPU_SECONDS[label] = cpu
    return wall


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--decode-prompt", type=int, default=32)
    parser.add_argument("--decode-steps", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sample-rows", default="1,8,32,96")
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--temperature", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = load(args.model)
    vocab, d = model.config.vocab_size, model.config.hidden_size
    ids = torch.randint(0, vocab, (args.batch, args.seq))
    mask = torch.ones_like(ids)

    def prefill():
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask, logits_to_keep=1)

    with torch.no_grad():
        model(input_ids=ids[:1, :16], logits_to_keep=1)  # warm-up
    prefill_s = median_timed(prefill, 'prefill', args.repeats)

    sample_rows = [int(r) for r in args.sample_rows.split(",")]
    prompts = torch.randint(0, vocab, (max(sample_rows + [args.batch]), args.decode_prompt))
    prompts[: args.batch] = ids[:, : args.decode_prompt]

    def generate(batch, steps, **sampling):
        prompt = prompts[:batch]
        with torch.no_grad():
            model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=steps,
                           min_new_tokens=steps, pad_token_id=0, **sampling)

    def decode_rate(batch, **sampling):
        """Tokens/s from the time difference of decode_steps and 1 new tokens (prefill cancels)."""
        generate(batch, 2, **sampling)  # warm-up
        one = timed(lambda: generate(batch, 1, **sampling))
        many = timed(lambda: generate(batch, args.decode_steps, **sampling))
        return batch * (args.decode_steps - 1) / (many - one)

    decode = {batch: decode_rate(batch, do_sample=False) for batch in (1, args.batch)}
    sample = {str(rows): decode_rate(rows, do_sample=True, top_p=args.top_p, top_k=args.top_k, temperature=args.temperature)
              for rows in sample_rows}

    direction = torch.sin(0.1 * (torch.arange(d, dtype=torch.float32) + 1))

    def train():
        embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
        hidden = model.model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        (hidden[:, -1, :] * direction).sum().backward()

    for p in model.parameters():
        p.requires_grad_(False)
    train_s = median_timed(train, 'train', args.repeats)
    tokens = args.batch * args.seq
    print(json.dumps({
        "threads": args.threads,
        "prefill_tokens_per_s": tokens / prefill_s,
        "decode_b1_tokens_per_s": decode[1],
        "decode_b8_tokens_per_s": decode[args.batch],
        "sample_tokens_per_s": sample,
        "train_tokens_per_s": tokens / train_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "prefill_tokens_per_cpu_s": tokens / CPU_SECONDS["prefill"],
        "train_tokens_per_cpu_s": tokens / CPU_SECONDS["train"],
    }))


if __name__ == "__main__":
    main()
