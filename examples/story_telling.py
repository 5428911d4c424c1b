"""The seed's GPU mapper: a causal LM writes a short story for each prompt, a batch at a time.

    flywheel map --input prompts.parquet --output stories --python ~/venv/bin/python \
        --mapper examples/story_telling.py:StoryTelling \
        --mapper-arg model=/models/my-llm --mapper-arg column=prompt --mapper-arg batch_size=32

`start()` loads the model once per worker onto the worker's GPU (flywheel sets
CUDA_VISIBLE_DEVICES to the one GPU the worker owns); `__call__` gets up to `batch_size` rows.
Sampling is seeded per chunk from FLYWHEEL_SEED, so a rerun gives the same stories whatever the
scheduling. Needs torch and transformers in the chosen --python.
"""

import os


class StoryTelling:
    def __init__(self, model="gpt2", column="prompt", max_new_tokens="128", temperature="0.8", batch_size="16"):
        self.model_path = model
        self.column = column
        self.max_new_tokens = int(max_new_tokens)
        self.temperature = float(temperature)
        self.batch_size = int(batch_size)

    def start(self):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.float16 if self.device == "cuda" else torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path, padding_side="left")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(self.model_path, torch_dtype=dtype).to(self.device).eval()

    def __call__(self, rows):
        torch = self.torch
        torch.manual_seed(int(os.environ.get("FLYWHEEL_SEED", "0")) % (2**63))
        prompts = [r[self.column] for r in rows]
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True).to(self.device)
        with torch.inference_mode():
            out = self.model.generate(
                **batch,
                max_new_tokens=self.max_new_tokens,
                do_sample=self.temperature > 0,
                temperature=self.temperature if self.temperature > 0 else None,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new_tokens = out[:, batch["input_ids"].shape[1]:]
        stories = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        counts = (new_tokens != self.tokenizer.pad_token_id).sum(dim=1).tolist()
        for prompt, story, n in zip(prompts, stories, counts):
            yield {"prompt": prompt, "story": story, "new_tokens": int(n)}
