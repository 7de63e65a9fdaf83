"""Writes packages/llm/test/golden/gguf.json: reference dequantizations for the TypeScript GGUF reader.

1. Real blocks: rows of SmolLM2-135M-Instruct.Q4_1.gguf tensors of every type the file holds
   (F32, Q4_1, Q8_0), dequantized by the `gguf` package (GGUF element order, before any reordering).
2. HF layout: rows of weights as transformers loads them from the same GGUF (names in HF form, q/k rows
   un-permuted, [out, in] orientation), to check name mapping and the rotary reorder independently.
3. Blocks for the other types: F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 quantized by
   gguf.quants.quantize from real SmolLM2 weights (two rows of blk.0.ffn_gate, dequantized); Q4_K, Q5_K, Q6_K (which gguf-py cannot quantize) from
   seeded random block bytes with finite f16 scales. Raw bytes are stored (base64) with the expected floats.

Floats are written as the shortest decimal that round-trips to the float32 value (compare after fround).
Run: /root/.cache/dro/pyref/bin/python tools/reference/golden_gguf.py
"""
import base64
import json
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFReader
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize, quantize

CACHE = os.environ.get("DRO_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "dro"))
GGUF = os.path.join(CACHE, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "packages", "llm", "test", "golden", "gguf.json")
PREFIX = 96  # values kept per row; the full row is covered by its float64 sum and sum of squares


def floats(values) -> list:
    return [float(str(np.float32(v))) for v in np.asarray(values, dtype=np.float32).ravel()]


def row_summary(row: np.ndarray) -> dict:
    row = np.asarray(row, dtype=np.float32)
    return {
        "length": int(row.size),
        "prefix": floats(row[:PREFIX]),
        "sum": float(row.astype(np.float64).sum()),
        "sumSquares": float((row.astype(np.float64) ** 2).sum()),
    }


def real_blocks(reader: GGUFReader) -> list:
    wanted = {
        "token_embd.weight": [0, 1, 49151],
        "blk.0.attn_q.weight": [0, 1, 575],
        "blk.0.attn_k.weight": [0, 191],
        "blk.3.ffn_down.weight": [0, 575],
        "blk.0.attn_norm.weight": [0],
        "output_norm.weight": [0],
    }
    out = []
    for t in reader.tensors:
        if t.name not in wanted:
            continue
        values = dequantize(t.data, t.tensor_type)  # numpy shape = reversed ggml dims (row-major)
        values = values.reshape(-1, int(t.shape[0]))
        out.append(
            {
                "name": t.name,
                "type": t.tensor_type.name,
                "dims": [int(d) for d in t.shape],
                "rows": {str(r): row_summary(values[r]) for r in wanted[t.name]},
            }
        )
    return out


def hf_layout() -> list:
    # transformers' own GGUF loader (the path from_pretrained(gguf_file=...) takes, minus the accelerate
    # requirement): dequantize, reverse the q/k permutation, map names onto an HF model's parameters.
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    config = AutoConfig.from_pretrained(os.path.dirname(GGUF), gguf_file=os.path.basename(GGUF))
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    state = load_gguf_checkpoint(GGUF, return_tensors=True, model_to_load=skeleton)["tensors"]
    wanted = {
        "model.embed_tokens.weight": [0, 1234],
        "model.layers.0.self_attn.q_proj.weight": [0, 1, 31, 32, 33, 63, 64, 575],
        "model.layers.0.self_attn.k_proj.weight": [0, 1, 32, 33, 191],
        "model.layers.7.self_attn.q_proj.weight": [100, 130],
        "model.layers.0.self_attn.v_proj.weight": [0, 100],
        "model.layers.3.mlp.down_proj.weight": [0, 575],
        "model.layers.0.input_layernorm.weight": [None],
        "model.norm.weight": [None],
    }
    out = []
    for name, rows in wanted.items():
        tensor = state[name].detach().to(torch.float32).numpy()
        entry = {"name": name, "shape": list(tensor.shape), "rows": {}}
        for r in rows:
            entry["rows"]["all" if r is None else str(r)] = row_summary(tensor if r is None else tensor[r])
        out.append(entry)
    return out


def synthetic_blocks(reader: GGUFReader) -> list:
    rng = np.random.default_rng(20240131)
    # Real weights as the source for the types gguf-py can quantize: a row of layer 0's gate projection.
    gate = next(t for t in reader.tensors if t.name == "blk.0.ffn_gate.weight")
    real_rows = dequantize(gate.data, gate.tensor_type).reshape(-1, int(gate.shape[0]))[:2, :64].astype(np.float32)
    out = []
    for qtype in [T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]:
        data = real_rows.copy()
        data[0, :3] = [0.0, -0.125, 1e-4]
        raw = quantize(data, qtype)
        expected = dequantize(raw, qtype)
        out.append({"type": qtype.name, "numElements": int(data.size), "bytes": base64.b64encode(raw.tobytes()).decode(), "expected": floats(expected)})
    for qtype in [T.Q4_K, T.Q5_K, T.Q6_K]:
        block_size, type_size = GGML_QUANT_SIZES[qtype]
        blocks = rng.integers(0, 256, size=(2, type_size), dtype=np.uint8)
        # Overwrite the f16 scale fields with finite values of a realistic size.
        d_offsets = [type_size - 2] if qtype == T.Q6_K else [0, 2]
        for b in range(2):
            for off in d_offsets:
                blocks[b, off : off + 2] = np.frombuffer(np.float16(rng.uniform(-0.02, 0.02)).tobytes(), dtype=np.uint8)
        expected = dequantize(blocks, qtype)
        out.append({"type": qtype.name, "numElements": 2 * block_size, "bytes": base64.b64encode(blocks.tobytes()).decode(), "expected": floats(expected)})
    return out


def main() -> None:
    if not os.path.exists(GGUF):
        sys.exit(f"{GGUF} is missing: run `npm run setup` first")
    reader = GGUFReader(GGUF)
    golden = {
        "file": os.path.basename(GGUF),
        "realBlocks": real_blocks(reader),
        "hfLayout": hf_layout(),
        "synthetic": synthetic_blocks(reader),
    }
    with open(OUT, "w") as f:
        json.dump(golden, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
