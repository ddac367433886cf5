"""NV-Embed's latent-attention pooling and two-stage instruction tuning, trained in a small torch loop.

FlagEmbedding pools by mean or [CLS] only, so ``arag train-embedder --pooling latent-attention``
(and ``--stages 2``, with either pooling) trains here: transformers' ``AutoModel`` as the encoder,
:class:`LatentAttentionPooling` on its last hidden states, InfoNCE with a temperature. The model
directory it writes holds the encoder (``config.json``, ``model.safetensors``, tokenizer files)
and, for latent attention, ``latent_attention.safetensors``, which
:class:`arag.embeddings.embedder.Embedder` applies in NumPy (:mod:`arag.embeddings.pooling`).

- **Stage 1**: the retrieval pairs, an instruction before each query (NV-Embed's
  ``Instruct: …\\nQuery: ``), InfoNCE over in-batch and hard negatives, as FlagEmbedding trains.
- **Stage 2**: a blend of the same retrieval pairs with non-retrieval tasks made from the corpus
  (same-document passage pairs, title-to-section classification: :mod:`arag.training.pairs`), each
  task with its own instruction, against its own hard negatives only. In-batch negatives would be
  wrong there: another query's positive can be a right answer (two passages of one document are
  both "similar" to a third).

The step budget (``max_steps``, else ``epochs`` over the retrieval pairs) is the same whatever the
stages, so runs compare at equal cost: with two, the second takes half of it. A checkpoint is
written every ``save_steps`` into the run folder; the same training run again resumes from it.

Example:
    >>> import torch
    >>> head = LatentAttentionPooling(dim=8, latents=4, heads=2)
    >>> hidden, mask = torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.long)
    >>> bool(torch.allclose(head(hidden, mask), hidden.mean(dim=1)))  # untrained: exactly mean pooling
    True
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from arag.embeddings.embedder import dense_layers, sentence_transformers_prompts
from arag.embeddings.pooling import POOLINGS, LatentAttentionHead
from arag.environment import apply_offline_environment
from arag.training.finetune import MODEL_FILES, FineTuneConfig
from arag.training.pairs import TrainingPair

DEFAULT_LATENTS, DEFAULT_HEADS = 64, 8
#: The MLP's hidden width, as a multiple of the encoder's (a transformer block's usual 4).
MLP_RATIO = 4
#: The head starts from nothing, so it learns faster than the pre-trained encoder under it.
HEAD_LEARNING_RATE = 1e-3
#: NV-Embed's template, before queries only (passages get none); used when no --query-instruction is given.
RETRIEVAL_INSTRUCTION = "Instruct: Given a search query, retrieve passages that answer it\nQuery: "
#: Instructions of the second stage's non-retrieval tasks, by pair kind (any other kind is retrieval).
TASK_INSTRUCTIONS = {
    "similarity": "Instruct: Retrieve a passage from the same document as the given passage\nQuery: ",
    "classification": "Instruct: Given a document title, retrieve a section of that document\nQuery: ",
}
CHECKPOINT = "checkpoint.pt"


class LatentAttentionPooling(torch.nn.Module):
    """NV-Embed's pooling: tokens attend to trained latents (keys = values), an MLP follows, then the mean.

    Parameter names are the tensor names of ``latent_attention.safetensors``; the NumPy twin that
    serves it is :class:`arag.embeddings.pooling.LatentAttentionHead`.
    """

    def __init__(self, dim: int, latents: int = DEFAULT_LATENTS, heads: int = DEFAULT_HEADS, mlp_width: int | None = None):
        super().__init__()
        if dim % heads:
            raise ValueError(f"{heads} heads do not divide the hidden size {dim}")
        self.heads = heads
        # Unit-variance latents; the query projection learns the scale at which tokens read them.
        self.latents = torch.nn.Parameter(torch.randn(latents, dim))
        self.query = torch.nn.Linear(dim, dim)
        self.out = torch.nn.Linear(dim, dim)
        self.mlp_in = torch.nn.Linear(dim, mlp_width or MLP_RATIO * dim)
        self.mlp_out = torch.nn.Linear(mlp_width or MLP_RATIO * dim, dim)
        # Both branches are residual and their output projections start at zero: the untrained head is
        # mean pooling, so a short run on a few thousand pairs starts from the base model's vectors.
        for layer in (self.out, self.mlp_out):
            torch.nn.init.zeros_(layer.weight)
            torch.nn.init.zeros_(layer.bias)

    def tokens(self, hidden: torch.Tensor) -> torch.Tensor:
        batch, length, dim = hidden.shape
        per_head = dim // self.heads
        query = self.query(hidden).view(batch, length, self.heads, per_head).transpose(1, 2)
        latents = self.latents.view(-1, self.heads, per_head).transpose(0, 1)  # (heads, r, per_head)
        weights = torch.softmax(query @ latents.transpose(1, 2) / per_head**0.5, dim=-1)
        attended = (weights @ latents).transpose(1, 2).reshape(batch, length, dim)
        x = hidden + self.out(attended)
        return x + self.mlp_out(F.gelu(self.mlp_in(x), approximate="tanh"))

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Pooled (not yet normalised) vectors: the head's tokens, mean-pooled over the mask."""
        return masked_mean(self.tokens(hidden), mask)

    def to_head(self) -> LatentAttentionHead:
        weights = {name: value.detach().cpu().float().numpy() for name, value in self.state_dict().items()}
        return LatentAttentionHead(weights, heads=self.heads)

    @classmethod
    def from_head(cls, head: LatentAttentionHead) -> LatentAttentionPooling:
        module = cls(head.dim, head.latents, head.heads, mlp_width=int(head.weights["mlp_in.weight"].shape[0]))
        module.load_state_dict({name: torch.from_numpy(value.copy()) for name, value in head.weights.items()})
        return module


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


@dataclass
class Stage:
    """One stage of training: its pairs (with hard negatives) and whether the batch's other passages count as negatives."""

    name: str
    pairs: list[TrainingPair]
    in_batch_negatives: bool


@dataclass
class Batch:
    """One optimiser step's texts: each query with its group of passages, the positive first."""

    stage: int
    queries: list[str]
    passages: list[str]  # group_size a query, in query order


def hidden_size(model_dir: Path) -> int:
    config = json.loads((Path(model_dir) / "config.json").read_text())
    return int(config.get("hidden_size") or config.get("dim"))


def resolved_config(base: Path, cfg: FineTuneConfig) -> FineTuneConfig:
    """``cfg`` as this loop runs it: the retrieval instruction and the head's shape filled in.

    Raises ValueError for what the loop cannot train: an unknown pooling or stage count, no hard
    negative in a step of the second stage, a base model with sentence-transformers ``Dense`` layers
    or prompts (which it would drop), heads that do not divide the hidden size, or a head shape
    other than that of the base model's own head (which training continues from).
    """
    if cfg.pooling not in POOLINGS:
        raise ValueError(f"pooling {cfg.pooling!r}: use one of {', '.join(POOLINGS)}")
    if cfg.stages not in (1, 2):
        raise ValueError(f"stages {cfg.stages}: use 1 or 2")
    if cfg.stages == 2 and cfg.group_size < 2:
        raise ValueError("the second stage learns from hard negatives only: --negatives-per-step must be at least 1")
    if dense_layers(base) or sentence_transformers_prompts(base):
        raise ValueError(f"{base} has Dense layers or prompts, which latent-attention and two-stage training do not "
                         "carry over; train it with --pooling mean --stages 1")
    update: dict = {"query_instruction": cfg.query_instruction or RETRIEVAL_INSTRUCTION, "latents": None, "heads": None}
    if cfg.pooling == "latent-attention":
        own = LatentAttentionHead.load(base)
        latents = cfg.latents or (own.latents if own else DEFAULT_LATENTS)
        heads = cfg.heads or (own.heads if own else DEFAULT_HEADS)
        if own is not None and (latents, heads) != (own.latents, own.heads):
            raise ValueError(f"{base} pools with {own.latents} latents and {own.heads} heads, which training continues "
                             "from: leave --latents and --heads out, or start from another --base")
        dim = hidden_size(base)
        if latents < 1 or heads < 1 or dim % heads:
            raise ValueError(f"--heads {heads} must divide the hidden size {dim} of {base}, and --latents be at least 1")
        update |= {"latents": latents, "heads": heads}
    return replace(cfg, **update)


def instruction_for(kind: str, cfg: FineTuneConfig) -> str:
    return TASK_INSTRUCTIONS.get(kind, cfg.query_instruction or "")


def stage_steps(cfg: FineTuneConfig, stages: list[Stage]) -> list[int]:
    """Optimiser steps of each stage: ``max_steps`` (else ``epochs`` over the first stage's pairs), the second stage taking half.

    Example:
        >>> cfg = FineTuneConfig(max_steps=9)
        >>> stage_steps(cfg, [Stage("retrieval", [], True)]), stage_steps(cfg, [Stage("retrieval", [], True), Stage("blend", [], False)])
        ([9], [5, 4])
    """
    total = cfg.max_steps if cfg.max_steps > 0 else int(cfg.epochs * len(stages[0].pairs) // cfg.batch_size)
    total = max(total, len(stages))
    return [total] if len(stages) == 1 else [total - total // 2, total // 2]


def plan_batches(stage_no: int, stage: Stage, steps: int, cfg: FineTuneConfig, rng: random.Random) -> list[Batch]:
    """The stage's batches, drawn up front so that a resumed run takes the same ones.

    Pairs are shuffled each pass (a short last batch is dropped, as FlagEmbedding does); each brings
    ``group_size - 1`` of its hard negatives, drawn again every time it comes up.
    """
    usable = [p for p in stage.pairs if p.negatives]
    if not usable:
        raise ValueError(f"stage {stage.name}: no pair has hard negatives")
    size, k = min(cfg.batch_size, len(usable)), cfg.group_size - 1
    order: list[TrainingPair] = []
    batches = []
    for _ in range(steps):
        if len(order) < size:
            order = rng.sample(usable, len(usable))
        members, order = order[:size], order[size:]
        passages: list[str] = []
        for pair in members:
            negatives = rng.sample(pair.negatives, k) if len(pair.negatives) >= k else rng.choices(pair.negatives, k=k)
            passages += [pair.positive, *negatives]
        batches.append(Batch(stage_no, [instruction_for(p.kind, cfg) + p.query for p in members], passages))
    return batches


def contrastive_loss(queries: torch.Tensor, passages: torch.Tensor, group: int, in_batch: bool, temperature: float) -> torch.Tensor:
    """InfoNCE of normalised vectors: each query against its own group (positive first) and, with
    ``in_batch``, against every other passage of the batch too.
    """
    if in_batch:
        scores = queries @ passages.T
        target = torch.arange(len(queries), device=queries.device) * group
    else:
        scores = (queries.unsqueeze(1) * passages.view(len(queries), group, -1)).sum(dim=-1)
        target = torch.zeros(len(queries), dtype=torch.long, device=queries.device)
    return F.cross_entropy(scores / temperature, target)


def learning_rate_factor(step: int, steps: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then linear decay to zero at ``steps`` (the first step learns already)."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return max(0.0, (steps - step) / max(1, steps - warmup))


def _fingerprint(base: Path, cfg: FineTuneConfig, plan: list[Batch]) -> str:
    digest = hashlib.sha256(json.dumps([str(base), asdict(cfg)], sort_keys=True).encode())
    for batch in plan:
        digest.update(json.dumps([batch.stage, batch.queries, batch.passages]).encode())
    return digest.hexdigest()


def _resume(run_dir: Path, fingerprint: str, encoder, head, optimizer) -> int:
    """The step a checkpoint of this very run (same base, settings and data) left off at; 0 starts clean."""
    path = run_dir / CHECKPOINT
    if path.exists():
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state.get("fingerprint") == fingerprint:
            encoder.load_state_dict(state["encoder"])
            if head is not None:
                head.load_state_dict(state["head"])
            optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["rng"])
            return int(state["step"])
    shutil.rmtree(run_dir, ignore_errors=True)
    return 0


def _save_checkpoint(run_dir: Path, fingerprint: str, step: int, encoder, head, optimizer) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    state = {"fingerprint": fingerprint, "step": step, "encoder": encoder.state_dict(),
             "head": head.state_dict() if head is not None else None, "optimizer": optimizer.state_dict(),
             "rng": torch.get_rng_state()}
    # Written beside and renamed: a run killed mid-write leaves the previous checkpoint whole.
    torch.save(state, run_dir / f"{CHECKPOINT}.tmp")
    os.replace(run_dir / f"{CHECKPOINT}.tmp", run_dir / CHECKPOINT)


def fine_tune_staged(base: Path, stages: list[Stage], run_dir: Path, out_dir: Path, cfg: FineTuneConfig,
                     quiet: bool = False) -> dict:
    """Train the encoder of ``base`` (and, for latent attention, its head) through ``stages`` into ``out_dir``.

    ``cfg`` is what :func:`resolved_config` returns. A base model with a latent-attention head of its
    own continues from it. Returns what the model card tells of the run: steps and last loss per
    stage, and the step it resumed from.
    """
    apply_offline_environment()
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.manual_seed(cfg.seed)
    encoder = AutoModel.from_pretrained(str(base))
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    head = None
    if cfg.pooling == "latent-attention":
        own = LatentAttentionHead.load(base)
        head = LatentAttentionPooling.from_head(own) if own else LatentAttentionPooling(hidden_size(base), cfg.latents, cfg.heads)
    steps = stage_steps(cfg, stages)
    rng = random.Random(cfg.seed)
    plan = [batch for n, (stage, count) in enumerate(zip(stages, steps)) for batch in plan_batches(n, stage, count, cfg, rng)]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    encoder.to(device).train()
    groups = [{"params": list(encoder.parameters()), "lr": cfg.learning_rate}]
    if head is not None:
        head.to(device).train()
        groups.append({"params": list(head.parameters()), "lr": HEAD_LEARNING_RATE})
    peak = [group["lr"] for group in groups]
    optimizer = torch.optim.AdamW(groups, weight_decay=0.0)
    fingerprint = _fingerprint(base, cfg, plan)
    start = _resume(run_dir, fingerprint, encoder, head, optimizer)

    def embed(texts: list[str], max_length: int) -> torch.Tensor:
        feed = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(device)
        hidden = encoder(**feed).last_hidden_state
        pooled = head(hidden, feed["attention_mask"]) if head is not None else masked_mean(hidden, feed["attention_mask"])
        return F.normalize(pooled, dim=-1)

    last_loss: dict[str, float] = {}
    first_step = [sum(steps[:n]) for n in range(len(steps))]
    with tqdm(total=len(plan), initial=start, desc="fine-tune embedder", unit="step", disable=quiet) as bar:
        for step in range(start, len(plan)):
            batch = plan[step]
            stage = stages[batch.stage]
            factor = learning_rate_factor(step - first_step[batch.stage], steps[batch.stage], cfg.warmup_steps)
            for group, lr in zip(optimizer.param_groups, peak):
                group["lr"] = lr * factor
            loss = contrastive_loss(embed(batch.queries, cfg.query_max_len), embed(batch.passages, cfg.passage_max_len),
                                    cfg.group_size, stage.in_batch_negatives, cfg.temperature)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            last_loss[stage.name] = round(loss.item(), 4)
            bar.set_postfix(stage=stage.name, loss=f"{last_loss[stage.name]:.3f}")
            bar.update()
            if (step + 1) % cfg.save_steps == 0 and step + 1 < len(plan):
                _save_checkpoint(run_dir, fingerprint, step + 1, encoder, head, optimizer)

    out_dir.mkdir(parents=True, exist_ok=True)
    encoder.save_pretrained(str(out_dir))
    for name in MODEL_FILES:
        if not (out_dir / name).exists() and (Path(base) / name).exists():
            shutil.copy2(Path(base) / name, out_dir / name)
    if head is not None:
        head.to_head().save(out_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    return {"steps": {stage.name: count for stage, count in zip(stages, steps)}, "last_loss": last_loss,
            "resumed_from_step": start}
