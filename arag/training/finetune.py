"""Fine-tuning through FlagEmbedding, in a child process.

Embedders train with FlagEmbedding's encoder-only embedder fine-tuning (contrastive InfoNCE
over in-batch and hard negatives, with a temperature and an optional query instruction);
rerankers with its encoder-only reranker fine-tuning (a cross-encoder trained with a
listwise softmax over one positive and its hard negatives). Both start from the packaged
all-MiniLM-L6-v2 or any local model directory.

The child process keeps the trainer's memory out of the app and shows the Hugging Face
trainer's progress bar. Checkpoints are written every ``save_steps`` into the run folder;
running the same command again resumes from the newest one. A GPU is used when torch sees
one, otherwise the CPU.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from arag.environment import offline_environment

MODULES = {
    "embedder": "FlagEmbedding.finetune.embedder.encoder_only.base",
    "reranker": "FlagEmbedding.finetune.reranker.encoder_only.base",
}
#: Files of a finished run that make up the model directory.
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "vocab.txt")


class FineTuneError(RuntimeError):
    """The fine-tuning process failed."""


@dataclass
class FineTuneConfig:
    """Knobs of one fine-tuning run (defaults sized for a few thousand pairs on a laptop CPU)."""

    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 16
    group_size: int = 4
    learning_rate: float = 3e-5
    warmup_steps: int = 10
    temperature: float = 0.05
    query_instruction: str | None = None
    query_max_len: int = 64
    passage_max_len: int = 192
    save_steps: int = 50
    seed: int = 13
    # Embedders only. Mean pooling in one stage trains with FlagEmbedding; latent-attention pooling
    # or a second stage with arag's own loop (training.latent_attention).
    pooling: str = "mean"  # or "latent-attention" (NV-Embed)
    stages: int = 1  # 2: then a blend of retrieval and non-retrieval tasks, hard negatives only
    latents: int | None = None  # latent-attention: latents, default 64 (or the base model's head)
    heads: int | None = None  # latent-attention: attention heads, default 8 (or the base model's head)

    @property
    def own_loop(self) -> bool:
        """Whether an embedder run needs arag's own loop: FlagEmbedding has no latent attention and one stage."""
        return self.pooling != "mean" or self.stages > 1


def has_gpu() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def fine_tune_command(kind: str, base: Path, train_file: Path, run_dir: Path, cfg: FineTuneConfig) -> list[str]:
    if kind not in MODULES:
        raise ValueError(f"unknown model kind {kind!r}")
    cmd = [
        sys.executable, "-m", MODULES[kind],
        "--model_name_or_path", str(base),
        "--train_data", str(train_file),
        "--output_dir", str(run_dir),
        "--num_train_epochs", str(cfg.epochs),
        "--max_steps", str(cfg.max_steps),
        "--per_device_train_batch_size", str(cfg.batch_size),
        "--train_group_size", str(cfg.group_size),
        "--learning_rate", str(cfg.learning_rate),
        "--warmup_steps", str(cfg.warmup_steps),
        "--query_max_len", str(cfg.query_max_len),
        "--passage_max_len", str(cfg.passage_max_len),
        "--save_steps", str(cfg.save_steps),
        "--save_total_limit", "2",
        "--logging_steps", "10",
        "--seed", str(cfg.seed),
        "--dataloader_num_workers", "0",
        # FlagEmbedding's reranker reshapes logits by the configured batch size, so a short last
        # batch crashes the run at its final step; dropping it loses at most batch_size - 1 pairs.
        "--dataloader_drop_last", "True",
        "--report_to", "none",
        "--disable_tqdm", "False",
    ]
    if kind == "embedder":
        cmd += ["--sentence_pooling_method", "mean", "--normalize_embeddings", "True",
                "--temperature", str(cfg.temperature)]
        if cfg.query_instruction:
            cmd += ["--query_instruction_for_retrieval", cfg.query_instruction, "--query_instruction_format", "{}{}"]
    else:
        cmd += ["--max_len", str(cfg.query_max_len + cfg.passage_max_len)]
    if not has_gpu():
        cmd += ["--use_cpu", "True"]
    return cmd


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = [(int(p.name.split("-")[1]), p) for p in run_dir.glob("checkpoint-*") if p.name.split("-")[1].isdigit()]
    return max(found)[1] if found else None


def fine_tune(kind: str, base: Path, train_file: Path, run_dir: Path, out_dir: Path, cfg: FineTuneConfig,
              quiet: bool = False) -> Path:
    """Train ``kind`` from ``base`` on ``train_file``; the model lands in ``out_dir`` (returned).

    ``run_dir`` holds checkpoints; an existing checkpoint there is resumed.
    """
    cmd = fine_tune_command(kind, base, train_file, run_dir, cfg)
    checkpoint = latest_checkpoint(run_dir) if run_dir.exists() else None
    if checkpoint is not None:
        cmd += ["--resume_from_checkpoint", str(checkpoint)]
    elif run_dir.exists():
        shutil.rmtree(run_dir)  # a run that died before its first checkpoint: start clean
    # The datasets library's own switch and silenced warnings are what the trainer child needs,
    # so they are set outright; the shared offline defaults leave a user's own values alone.
    env = offline_environment(HF_DATASETS_OFFLINE="1", PYTHONWARNINGS="ignore")
    env.setdefault("HF_DATASETS_CACHE", str(run_dir.parent / "datasets-cache"))
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL if quiet else None,
                          stderr=subprocess.PIPE if quiet else None, text=True)
    if done.returncode != 0:
        detail = (done.stderr or "").strip().splitlines()[-3:] if quiet else ["see the output above"]
        raise FineTuneError(f"{kind} fine-tuning failed (exit {done.returncode}): {' | '.join(detail)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, out_dir / name)
    if not (out_dir / "config.json").exists() or not (out_dir / "model.safetensors").exists():
        raise FineTuneError(f"{kind} fine-tuning wrote no model to {run_dir}")
    shutil.rmtree(run_dir, ignore_errors=True)
    return out_dir
