"""From an encoder's last hidden states to one vector a text: mean pooling, or NV-Embed's latent attention.

A model directory that holds ``latent_attention.safetensors`` (written by ``arag train-embedder
--pooling latent-attention``) pools through that head; any other directory mean-pools, as
sentence-transformers' MiniLM does. The head runs in NumPy on the hidden states, so it works the
same behind the torch and the ONNX encoders, and the question path imports no torch.

The head (Lee et al., "NV-Embed", 2024): each token's hidden state is a query that attends to a
trained latent array (``r`` latents of the hidden size, which serve as both keys and values;
several heads), the result is projected and added back to the token, an MLP with GELU follows
(added back too), and the tokens are mean-pooled over the attention mask. Its torch twin, which
trains it, is :class:`arag.training.latent_attention.LatentAttentionPooling`.

Example:
    >>> import numpy as np
    >>> hidden = np.array([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]], dtype=np.float32)
    >>> mean_pool(hidden, np.array([[1, 1, 0]]))
    array([[2., 2.]])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The poolings ``arag train-embedder --pooling`` offers.
POOLINGS = ("mean", "latent-attention")
#: Where a model directory keeps its latent-attention head.
LATENT_ATTENTION_FILE = "latent_attention.safetensors"
#: The head's tensors, as the torch module names its parameters.
TENSORS = ("latents", "query.weight", "query.bias", "out.weight", "out.bias",
           "mlp_in.weight", "mlp_in.bias", "mlp_out.weight", "mlp_out.bias")


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The mean of each row's hidden states over its (integer) attention mask: (batch, tokens, dim) → (batch, dim).

    Summed in float64, as the Embedder always has, so a model without a head gives the vectors it gave;
    one contraction, not a masked (batch, tokens, dim) float64 copy summed afterwards (a quarter of the time).

    Example:
        >>> import numpy as np
        >>> mean_pool(np.array([[[1.0, 2.0], [3.0, 4.0]]], dtype=np.float32), np.array([[1, 0]]))
        array([[1., 2.]])
    """
    weights = mask.astype(np.float64)
    return np.einsum("bt,btd->bd", weights, hidden, dtype=np.float64) / weights.sum(axis=1, keepdims=True)


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU in its tanh form: NumPy has no erf, and the torch module uses the same form."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


@dataclass
class LatentAttentionHead:
    """NV-Embed's latent-attention pooling, in NumPy, from the weights a trained model directory keeps.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> d, r, m = 8, 4, 16
        >>> shapes = {"latents": (r, d), "query.weight": (d, d), "query.bias": (d,), "out.weight": (d, d),
        ...           "out.bias": (d,), "mlp_in.weight": (m, d), "mlp_in.bias": (m,), "mlp_out.weight": (d, m),
        ...           "mlp_out.bias": (d,)}
        >>> head = LatentAttentionHead({k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}, heads=2)
        >>> head(rng.normal(size=(3, 5, d)).astype(np.float32), np.ones((3, 5), dtype=np.int64)).shape
        (3, 8)
    """

    weights: dict[str, np.ndarray]
    heads: int

    def __post_init__(self):
        missing = [name for name in TENSORS if name not in self.weights]
        if missing:
            raise ValueError(f"latent-attention head lacks {', '.join(missing)}")
        if self.dim % self.heads:
            raise ValueError(f"{self.heads} heads do not divide the hidden size {self.dim}")

    @property
    def dim(self) -> int:
        return int(self.weights["latents"].shape[1])

    @property
    def latents(self) -> int:
        return int(self.weights["latents"].shape[0])

    @classmethod
    def load(cls, model_dir: Path) -> LatentAttentionHead | None:
        """The head kept in ``model_dir``; None when there is none (the model mean-pools)."""
        path = Path(model_dir) / LATENT_ATTENTION_FILE
        if not path.is_file():
            return None
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            weights = {name: f.get_tensor(name).astype(np.float32) for name in f.keys()}
        return cls(weights, heads=int(metadata.get("heads", 1)))

    def save(self, model_dir: Path) -> Path:
        from safetensors.numpy import save_file

        path = Path(model_dir) / LATENT_ATTENTION_FILE
        save_file({name: np.ascontiguousarray(self.weights[name], dtype=np.float32) for name in TENSORS}, str(path),
                  metadata={"pooling": "latent-attention", "heads": str(self.heads)})
        return path

    def tokens(self, hidden: np.ndarray) -> np.ndarray:
        """Each token after cross-attention to the latents and the MLP, both residual: (batch, tokens, dim)."""
        w = self.weights
        batch, length, dim = hidden.shape
        per_head = dim // self.heads
        query = (hidden @ w["query.weight"].T + w["query.bias"]).reshape(batch, length, self.heads, per_head)
        query = query.transpose(0, 2, 1, 3)  # (batch, heads, tokens, per_head)
        latents = w["latents"].reshape(self.latents, self.heads, per_head).transpose(1, 0, 2)  # (heads, r, per_head)
        scores = query @ latents.transpose(0, 2, 1) / math.sqrt(per_head)  # (batch, heads, tokens, r)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        attended = (scores / scores.sum(axis=-1, keepdims=True)) @ latents  # keys and values are the latents
        attended = attended.transpose(0, 2, 1, 3).reshape(batch, length, dim)
        x = hidden + attended @ w["out.weight"].T + w["out.bias"]
        return x + gelu(x @ w["mlp_in.weight"].T + w["mlp_in.bias"]) @ w["mlp_out.weight"].T + w["mlp_out.bias"]

    def __call__(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Pooled (not yet normalised) vectors: the head's tokens, mean-pooled over the mask."""
        return mean_pool(self.tokens(np.asarray(hidden, dtype=np.float32)), mask)
