"""GPU check helpers (issue 10). Run on a machine with one NVIDIA GPU, torch and transformers.

  bench_lm.py setup DIR N        write a small causal LM with random weights (no download) to
                                 DIR/model and N prompts to DIR/prompts.parquet
  bench_lm.py batched DIR B T    the baseline: the same mapper in a plain batched Python loop
  bench_lm.py per-row DIR T      the seed's unbatched per-row generate (on the first 512 prompts)

Each timing run prints one JSON line: {"case", "rows", "seconds", "rows_per_s"}.
"""

import json
import os
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq


def setup(d, n):
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast
    import torch

    torch.manual_seed(0)
    os.makedirs(os.path.join(d, "model"), exist_ok=True)
    # A byte-level tokenizer built offline from a tiny vocabulary: no hub access.
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    vocab = {chr(i): i for i in range(256)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    fast = GPT2TokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.save_pretrained(os.path.join(d, "model"))
    cfg = GPT2Config(vocab_size=len(fast), n_positions=256, n_embd=512, n_layer=6, n_head=8,
                     bos_token_id=fast.eos_token_id, eos_token_id=fast.eos_token_id)
    GPT2LMHeadModel(cfg).save_pretrained(os.path.join(d, "model"))
    prompts = [f"Once upon a time in village {i}, a" for i in range(n)]
    pq.write_table(pa.table({"id": list(range(n)), "prompt": prompts}), os.path.join(d, "prompts.parquet"), row_group_size=2048)


def load(d):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))
    from story_telling import StoryTelling
    return StoryTelling


def batched(d, batch, tokens):
    StoryTelling = load(d)
    m = StoryTelling(model=os.path.join(d, "model"), max_new_tokens=tokens, temperature="0", batch_size=batch)
    m.start()
    rows = pq.read_table(os.path.join(d, "prompts.parquet")).to_pylist()
    t = time.time()
    out = []
    for i in range(0, len(rows), m.batch_size):
        out.extend(m(rows[i:i + m.batch_size]))
    m.torch.cuda.synchronize()
    s = time.time() - t
    print(json.dumps({"case": "plain batched loop", "rows": len(out), "seconds": s, "rows_per_s": len(out) / s}))


def per_row(d, tokens):
    StoryTelling = load(d)
    m = StoryTelling(model=os.path.join(d, "model"), max_new_tokens=tokens, temperature="0", batch_size="1")
    m.start()
    rows = pq.read_table(os.path.join(d, "prompts.parquet")).to_pylist()[:512]
    t = time.time()
    out = []
    for r in rows:
        out.extend(m([r]))
    m.torch.cuda.synchronize()
    s = time.time() - t
    print(json.dumps({"case": "per-row generate (512 prompts)", "rows": len(out), "seconds": s, "rows_per_s": len(out) / s}))


if __name__ == "__main__":
    cmd, d = sys.argv[1], sys.argv[2]
    if cmd == "setup":
        setup(d, int(sys.argv[3]))
    elif cmd == "batched":
        batched(d, sys.argv[3], sys.argv[4])
    else:
        per_row(d, sys.argv[3])
