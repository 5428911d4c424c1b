"""Batched text embeddings into a `vector<N, fp16>` column.

    flywheel map --input docs.parquet --output embedded --python ~/venv/bin/python \
        --mapper examples/embeddings.py:Embed --mapper-arg model=/models/encoder \
        --mapper-arg column=text --schema "id: int, embedding: vector<384, fp16>"

Mean-pools the encoder's last hidden state over the non-padding tokens and L2-normalises it.
The vector length is the model's hidden size; `--schema` makes flywheel check it on every row.
Needs torch and transformers in the chosen --python.
"""


class Embed:
    def __init__(self, model, column="text", id_column="id", batch_size="64", max_length="512"):
        self.model_path = model
        self.column = column
        self.id_column = id_column
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)

    def start(self):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.float16 if self.device == "cuda" else torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.model = AutoModel.from_pretrained(self.model_path, torch_dtype=dtype).to(self.device).eval()

    def __call__(self, rows):
        torch = self.torch
        texts = [r[self.column] for r in rows]
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_length).to(self.device)
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        pooled = torch.nn.functional.normalize(pooled.float(), dim=-1).half().cpu()
        for row, vec in zip(rows, pooled):
            yield {"id": row[self.id_column], "embedding": vec.tolist()}
