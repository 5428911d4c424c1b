"""Makes two tiny models with random (seeded) weights in OUTDIR, with no download: a GPT-2 style
causal LM in OUTDIR/lm and a BERT style encoder (hidden size 24) in OUTDIR/enc, sharing a
word-level tokenizer built here from a small vocabulary."""

import os
import sys

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

WORDS = ("the a cat dog bird sat ran flew on under over mat tree sky and then it is was "
         "what why how tell me about story short long red blue green one two three").split()


def tokenizer():
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[EOS]"] + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", eos_token="[EOS]")


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    tok = tokenizer()
    lm = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                    bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id,
                                    pad_token_id=tok.pad_token_id))
    lm.save_pretrained(os.path.join(out, "lm"))
    tok.save_pretrained(os.path.join(out, "lm"))
    enc = BertModel(BertConfig(vocab_size=len(tok), hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=48, max_position_embeddings=64, pad_token_id=tok.pad_token_id))
    enc.save_pretrained(os.path.join(out, "enc"))
    tok.save_pretrained(os.path.join(out, "enc"))


main()
