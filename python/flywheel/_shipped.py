"""Mappers shipped with flywheel, selected with `--mapper flywheel:NAME` and configured with
`--mapper-arg KEY=VALUE`. Their arguments are declared once, in flywheel's table of them
(protocol/src/shipped.rs), which checks them before any worker starts, documents them in
`flywheel map --help`, and hands the classes below every argument typed (numbers, booleans,
lowercase choices) with its default filled in:

- `flywheel:generate`: a causal language model over a prompt column (vLLM's offline
  `LLM.generate` where vLLM is importable, transformers otherwise). Each output row is the input
  row plus the generated text and its token counts.
- `flywheel:embed`: a text encoder over a text column (transformers), pooled and normalised.
  Each output row is the input row plus a `vector<N, fp16>` column.

`start()` loads the model once per worker, onto the worker's GPU when there is one
(flywheel sets CUDA_VISIBLE_DEVICES per worker), otherwise the CPU. Batches are of
`batch_size` rows; the chunk's seed (FLYWHEEL_SEED) seeds sampling, so a rerun of the same
chunk draws the same tokens.
"""

import os


def _torch_dtype(torch, name, device):
    if name == "auto":
        return torch.float16 if device == "cuda" else torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


class _Seeded:
    """Re-seeds torch at the start of every chunk attempt, from the chunk's seed.

    The runner calls `begin_chunk` before each attempt, even when the same chunk runs twice in a
    row in this process (a copy stolen after it had begun, then a speculative copy of it): keyed
    on the seed changing, the second run would continue the first one's random stream."""

    _seed = 0
    _torch = None

    def begin_chunk(self, seed):
        self._seed = seed % (2**31)
        if self._torch is not None:
            self._torch.manual_seed(self._seed)


class Generate(_Seeded):
    def __init__(self, *, model, column, output_column, batch_size, max_new_tokens, temperature,
                 top_p, dtype, chat_template, engine):
        self.model_dir = model
        self.column = column
        self.output_column = output_column
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.dtype = dtype
        self.chat_template = chat_template
        if engine == "auto":
            try:
                import vllm  # noqa: F401
                engine = "vllm"
            except ImportError:
                engine = "transformers"
        self.engine = engine
        # Not given: one default per engine, {"transformers": N, "vllm": M}.
        self.batch_size = batch_size[engine] if isinstance(batch_size, dict) else batch_size

    def start(self):
        if self.engine == "vllm":
            from vllm import LLM
            self._llm = LLM(model=self.model_dir, dtype=(self.dtype or "auto"), seed=0)
            self._tokenizer = self._llm.get_tokenizer()
            self._torch = None
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        self._torch = torch
        self._device = "cuda" if torch.cuda.is_available() else "cpu"
        tok = AutoTokenizer.from_pretrained(self.model_dir)
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
        self._tokenizer = tok
        self._model = AutoModelForCausalLM.from_pretrained(
            self.model_dir, torch_dtype=_torch_dtype(torch, self.dtype, self._device)
        ).to(self._device).eval()

    def _prompt(self, text):
        use = self.chat_template == "on" or (
            self.chat_template == "auto" and getattr(self._tokenizer, "chat_template", None))
        if use:
            return self._tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
        return text

    def __call__(self, batch):
        seed = self._seed
        prompts = [self._prompt("" if r.get(self.column) is None else str(r[self.column])) for r in batch]
        if self.engine == "vllm":
            from vllm import SamplingParams
            params = SamplingParams(max_tokens=self.max_new_tokens, temperature=self.temperature,
                                    top_p=self.top_p, seed=seed)
            results = self._llm.generate(prompts, params, use_tqdm=False)
            for row, res in zip(batch, results):
                out = res.outputs[0]
                yield {**row, self.output_column: out.text,
                       "prompt_tokens": len(res.prompt_token_ids), "completion_tokens": len(out.token_ids)}
            return
        torch = self._torch
        tok = self._tokenizer
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=True).to(self._device)
        sample = self.temperature > 0
        kwargs = {"max_new_tokens": self.max_new_tokens, "do_sample": sample,
                  "pad_token_id": tok.pad_token_id}
        if sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p)
        with torch.no_grad():
            generated = self._model.generate(**enc, **kwargs)
        new = generated[:, enc["input_ids"].shape[1]:]
        prompt_lengths = enc["attention_mask"].sum(dim=1).tolist()
        for row, tokens, n_prompt in zip(batch, new, prompt_lengths):
            tokens = tokens.tolist()
            # Generation stops at the end-of-sequence token; what follows is padding.
            if tok.eos_token_id is not None and tok.eos_token_id in tokens:
                tokens = tokens[: tokens.index(tok.eos_token_id) + 1]
            yield {**row, self.output_column: tok.decode(tokens, skip_special_tokens=True),
                   "prompt_tokens": int(n_prompt), "completion_tokens": len(tokens)}


class Embed(_Seeded):
    def __init__(self, *, model, column, output_column, batch_size, max_length, pooling,
                 normalize, dtype):
        self.model_dir = model
        self.column = column
        self.output_column = output_column
        self.batch_size = batch_size
        self.max_length = max_length
        self.pooling = pooling
        self.normalize = normalize
        self.dtype = dtype

    def start(self):
        import torch
        from transformers import AutoModel, AutoTokenizer
        self._torch = torch
        self._device = "cuda" if torch.cuda.is_available() else "cpu"
        self._tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token or self._tokenizer.unk_token
        self._model = AutoModel.from_pretrained(
            self.model_dir, torch_dtype=_torch_dtype(torch, self.dtype, self._device)
        ).to(self._device).eval()

    def __call__(self, batch):
        torch = self._torch
        texts = ["" if r.get(self.column) is None else str(r[self.column]) for r in batch]
        enc = self._tokenizer(texts, return_tensors="pt", padding=True, truncation=True,
                              max_length=self.max_length).to(self._device)
        with torch.no_grad():
            hidden = self._model(**enc).last_hidden_state.float()
        if self.pooling == "cls":
            vectors = hidden[:, 0]
        else:
            mask = enc["attention_mask"].unsqueeze(-1).float()
            vectors = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        if self.normalize:
            vectors = torch.nn.functional.normalize(vectors, dim=-1)
        for row, v in zip(batch, vectors.cpu().tolist()):
            yield {**row, self.output_column: v}


MAPPERS = {"generate": Generate, "embed": Embed}
