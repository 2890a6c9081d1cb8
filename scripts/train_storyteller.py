"""Train the "storyteller" model: a small GPT-2 trained from scratch on Grimms' fairy tales.

The corpus is split into stories at their CAPITALISED titles; the last stories (~5% of the
text) are held out for validation. A byte-level BPE tokenizer is trained on the training
stories, then a small GPT2LMHeadModel is trained with AdamW under a wall-clock budget
(warmup + cosine schedule over the budget). The model, tokenizer, a model card and
training metrics are written to the output directory, then reloaded and sampled from.

Example:
    python scripts/train_storyteller.py --corpus ../shared/data/grimms-fairy-tales.txt \
        --out models/storyteller --max-minutes 20
"""

import argparse
import json
import math
import re
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tokenizers import ByteLevelBPETokenizer
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
    set_seed,
)
from transformers.utils import logging as hf_logging

EOS = "<|endoftext|>"
PROMPTS = ["Once upon a time", "The king's daughter", "In a dark forest there lived"]
TITLE_RE = re.compile(r"^[A-Z][A-Z ,.'-]*$")
QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
DEFAULTS = {  # max_minutes is the training wall-clock budget; threads the torch CPU threads
    "max_minutes": 20.0, "max_steps": 100_000, "vocab_size": 4096, "n_layer": 4, "n_embd": 256,
    "n_head": 4, "n_positions": 256, "dropout": 0.2, "block_size": 128, "batch_size": 16,
    "lr": 1e-3, "min_lr_ratio": 0.1, "warmup_steps": 100, "weight_decay": 0.1,
    "val_fraction": 0.05, "eval_every": 100, "threads": 2, "seed": 42,
}


def parse_args():
    """Parse command-line arguments (hyperparameter flags take their type from DEFAULTS)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", type=Path, required=True, help="UTF-8 text of the tales")
    p.add_argument("--out", type=Path, default=Path("models/storyteller"))
    for name, default in DEFAULTS.items():
        p.add_argument("--" + name.replace("_", "-"), type=type(default), default=default)
    return p.parse_args()


def split_stories(text):
    """Split the corpus into stories at title lines, unwrapping paragraphs and quotes."""
    stories, title, lines = [], None, []
    for line in [*text.translate(QUOTES).splitlines(), "THE END"]:
        if TITLE_RE.match(line.strip()) and any(c.isalpha() for c in line):
            if title is not None:
                paras = re.split(r"\n\s*\n", "\n".join(lines).strip())
                body = "\n\n".join(" ".join(p.split()) for p in paras if p.strip())
                if body:
                    stories.append(f"{title}\n\n{body}")
            title, lines = line.strip(), []
        else:
            lines.append(line)
    return stories


def split_train_val(stories, val_fraction):
    """Hold out the last stories whose share of characters is closest to val_fraction."""
    target, n_val, val_chars = val_fraction * sum(map(len, stories)), 1, len(stories[-1])
    while abs(val_chars + len(stories[-n_val - 1]) - target) < abs(val_chars - target):
        n_val += 1
        val_chars += len(stories[-n_val])
    return stories[:-n_val], stories[-n_val:]


def train_tokenizer(stories, vocab_size, max_length, out):
    """Train a byte-level BPE tokenizer and save it in transformers' format."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(stories, vocab_size=vocab_size, min_frequency=2,
                            special_tokens=[EOS], show_progress=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=EOS,
                                  eos_token=EOS, pad_token=EOS, unk_token=EOS,
                                  model_max_length=max_length, clean_up_tokenization_spaces=False)
    tok.save_pretrained(out)
    config = json.loads((out / "tokenizer_config.json").read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    special = {"bos_token": EOS, "eos_token": EOS, "pad_token": EOS, "unk_token": EOS}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    return AutoTokenizer.from_pretrained(out, local_files_only=True)


def encode(tok, stories):
    """Encode stories into one token stream, each story followed by the EOS token."""
    ids = []
    for story in stories:
        ids.extend(tok(story, verbose=False)["input_ids"] + [tok.eos_token_id])
    return torch.tensor(ids, dtype=torch.long)


def get_batch(data, block_size, batch_size, gen):
    """Sample a batch of random contiguous windows from a token stream."""
    starts = torch.randint(0, len(data) - block_size, (batch_size,), generator=gen)
    return torch.stack([data[s:s + block_size] for s in starts.tolist()])


@torch.no_grad()
def evaluate(model, data, block_size, batch_size=32):
    """Return the mean next-token loss over non-overlapping windows of a token stream."""
    model.eval()
    data = data[: (len(data) - 1) // block_size * block_size + 1]
    inputs, targets = data[:-1].view(-1, block_size), data[1:].view(-1, block_size)
    total = sum(F.cross_entropy(model(input_ids=x).logits.transpose(1, 2), y, reduction="sum")
                for x, y in zip(inputs.split(batch_size), targets.split(batch_size), strict=True))
    model.train()
    return total.item() / targets.numel()


def lr_at(args, step, progress):
    """Linear warmup, then cosine decay to min_lr_ratio * lr over training progress (0..1)."""
    if step < args.warmup_steps:
        return args.lr * (step + 1) / args.warmup_steps
    cos = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) * cos)


def train(args, model, train_ids, val_ids):
    """Train under the time/step budget, evaluating periodically; return the history."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(args.seed)
    budget, start, history, step = args.max_minutes * 60, time.time(), [], 0
    model.train()
    while step < args.max_steps:
        elapsed = time.time() - start
        if elapsed >= budget:
            break
        progress = max(step / args.max_steps, elapsed / budget)
        for group in opt.param_groups:
            group["lr"] = lr_at(args, step, progress)
        batch = get_batch(train_ids, args.block_size, args.batch_size, gen)
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        if step % args.eval_every == 0:
            val = evaluate(model, val_ids, args.block_size)
            history.append({"step": step, "minutes": round((time.time() - start) / 60, 2),
                            "lr": f"{opt.param_groups[0]['lr']:.2e}",
                            "train_loss": round(loss.item(), 4), "val_loss": round(val, 4),
                            "val_ppl": round(math.exp(val), 2)})
            print(" | ".join(f"{k} {v}" for k, v in history[-1].items()), flush=True)
    return step, time.time() - start, history


def sample(model, tok, prompts, seed):
    """Generate one nucleus-sampled continuation per prompt."""
    model.eval()
    set_seed(seed)  # reproducible samples
    outs = []
    for prompt in prompts:
        enc = tok(prompt, return_tensors="pt")
        ids = model.generate(**enc, do_sample=True, top_p=0.9, temperature=0.8,
                             max_new_tokens=80, pad_token_id=tok.eos_token_id)
        outs.append(tok.decode(ids[0], skip_special_tokens=True))
    return outs


def write_model_card(out, m, command):
    """Write a short README.md model card into the output directory."""
    a, samples = m["args"], "\n\n".join(f"> {t}" for t in m["samples"])
    (out / "README.md").write_text(f"""# storyteller

A small GPT-2 causal language model trained from scratch on Grimms' fairy tales (`{a['corpus']}`,
{m['n_stories']} stories; the last {len(m['val_titles'])}, {', '.join(m['val_titles'])}, held out).

- Architecture: GPT2LMHeadModel, {a['n_layer']} layers, hidden {a['n_embd']}, {a['n_head']} heads,
  {a['n_positions']} positions, tied input/output embeddings; {m['parameters']:,} parameters
- Tokenizer: byte-level BPE (vocab {m['vocab_size']}), `{EOS}` as bos/eos/pad
- Data: {m['train_tokens']:,} training / {m['val_tokens']:,} held-out tokens
- Training: AdamW (peak lr {a['lr']}, weight decay {a['weight_decay']}, dropout {a['dropout']}),
  {a['warmup_steps']}-step warmup then cosine decay over the time budget; batches of
  {a['batch_size']} x {a['block_size']} tokens; {m['steps']} steps in {m['train_minutes']:.1f} min
  on CPU ({a['threads']} threads), seed {a['seed']}
- Held-out loss {m['val_loss']:.3f}, perplexity **{m['val_ppl']:.2f}**

Trained with:

```
{command}
```

Samples (top_p 0.9, temperature 0.8, 80 new tokens):

{samples}
""")


def build_model(args, tok):
    """Create a randomly initialised GPT-2 model sized by the arguments."""
    config = GPT2Config(vocab_size=len(tok), n_positions=args.n_positions, n_embd=args.n_embd,
                        n_layer=args.n_layer, n_head=args.n_head, resid_pdrop=args.dropout,
                        embd_pdrop=args.dropout, attn_pdrop=args.dropout,
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                        pad_token_id=tok.pad_token_id)
    return GPT2LMHeadModel(config)


def main():
    """Train, evaluate, save, reload and sample the storyteller model."""
    args = parse_args()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    set_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    stories = split_stories(args.corpus.read_text(encoding="utf-8"))
    train_stories, val_stories = split_train_val(stories, args.val_fraction)
    tok = train_tokenizer(train_stories, args.vocab_size, args.n_positions, args.out)
    train_ids, val_ids = encode(tok, train_stories), encode(tok, val_stories)
    model = build_model(args, tok)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{len(stories)} stories, vocab {len(tok)}, train {len(train_ids):,} tokens, "
          f"val {len(val_ids):,} tokens, model {n_params:,} parameters", flush=True)

    steps, seconds, history = train(args, model, train_ids, val_ids)
    val_loss = evaluate(model, val_ids, args.block_size)
    print(f"done: {steps} steps in {seconds / 60:.1f} min | held-out loss {val_loss:.4f} | "
          f"perplexity {math.exp(val_loss):.2f}", flush=True)
    model.save_pretrained(args.out, safe_serialization=True)

    model = AutoModelForCausalLM.from_pretrained(args.out, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(args.out, local_files_only=True)
    samples = sample(model, tok, PROMPTS, args.seed)
    for i, text in enumerate(samples, 1):
        print(f"\n--- sample {i} ---\n{text}", flush=True)

    metrics = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
               "n_stories": len(stories), "val_titles": [s.split("\n", 1)[0] for s in val_stories],
               "train_tokens": len(train_ids), "val_tokens": len(val_ids), "vocab_size": len(tok),
               "parameters": n_params, "steps": steps, "train_minutes": round(seconds / 60, 2),
               "val_loss": round(val_loss, 4), "val_ppl": round(math.exp(val_loss), 2),
               "history": history, "samples": samples}
    (args.out / "training_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_model_card(args.out, metrics, shlex.join(["python", *sys.argv]))


if __name__ == "__main__":
    main()
