"""A BERT-style encoder run by ONNX Runtime: no torch on the question path, faster ingestion.

The sentence-transformers directory is exported once (torch is needed for that step only) to an
``.onnx`` file in the models cache, keyed by the weights' fingerprint; every later process loads
that file with ONNX Runtime and the ``tokenizers`` library, which import in a fraction of a second.
``fp32`` gives the same hidden states as torch (within 1e-5); ``int8`` (dynamic quantisation of the
weights) is faster on CPUs and moves scores a little, so its vectors count as a different model.
:class:`OpenVinoEncoder` runs the fp32 file in bfloat16 for large ingests, on CPUs where that is faster (AMX).

Example:
    >>> from arag.embeddings.onnx_encoder import onnx_file_name
    >>> onnx_file_name("minilm@0123", "int8")
    'minilm@0123-int8s.onnx'
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
#: A BERT-style layer's feed-forward output projection in the exported graph ("…/layer.3/output/dense/MatMul";
#: the attention block's own "…/attention/output/dense" is not it).
_FEED_FORWARD_OUT = re.compile(r"/layer\.\d+/output/dense/")


#: The file of each precision; "int8s" (signed weights) replaced an earlier unsigned export, whose
#: cached files must not be taken for it.
_FILE_TAGS = {"fp32": "fp32", "int8": "int8s"}


def onnx_file_name(model_id: str, precision: str) -> str:
    return f"{model_id}-{_FILE_TAGS[precision]}.onnx"


def export_onnx(model, target: Path, output: str, sample: dict, check: dict, quantise: str | None = None) -> Path:
    """Write a transformers ``model`` taking ids, mask and token types to ``target`` as ONNX.

    ``output`` names the model output kept ("last_hidden_state", "logits"); ``sample`` is the
    batch it is traced with, ``check`` a batch of other shapes on which ONNX Runtime must give the
    torch model's output (the tracer can freeze a shape silently). ``quantise`` "per-tensor" or
    "per-channel" stores the weights as int8. Written beside the target and renamed into place, so
    a crash mid-export, or two processes exporting at once, never leave a half-written file.
    """
    import onnxruntime
    import torch

    # MPNet takes no token types; BERT-style encoders do.
    names = [n for n in INPUTS if n != "token_type_ids" or n in inspect.signature(model.forward).parameters]

    class KeywordInputs(torch.nn.Module):
        # The tracer passes inputs by position; transformers' forward() takes them by keyword.
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *inputs):
            return getattr(self.inner(**dict(zip(names, inputs))), output)

    wrapped = KeywordInputs(model).eval()
    axes = {name: {0: "batch", 1: "tokens"} for name in names}
    axes[output] = {0: "batch", 1: "tokens"} if output == "last_hidden_state" else {0: "batch"}
    target.parent.mkdir(parents=True, exist_ok=True)
    root, level = logging.getLogger(), logging.getLogger().level
    # The tracer and the quantiser warn about cases that do not apply here; the check tests the result.
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root.setLevel(logging.ERROR)
        try:
            plain = Path(scratch) / "fp32.onnx"
            with torch.no_grad():
                torch.onnx.export(wrapped, tuple(sample[k] for k in names), str(plain), input_names=names,
                                  output_names=[output], dynamic_axes=axes, opset_version=17, dynamo=False)
                expected = wrapped(*(check[k] for k in names)).numpy()
            session = onnxruntime.InferenceSession(str(plain), providers=["CPUExecutionProvider"])
            got = session.run(None, {k: check[k].numpy().astype(np.int64) for k in names})[0]
            if got.shape != expected.shape or not np.allclose(got, expected, atol=1e-3, rtol=1e-3):
                raise RuntimeError("the ONNX export differs from the torch model "
                                   f"(max difference {np.abs(got - expected).max():.4g})")
            written = plain
            if quantise:
                import onnx
                from onnxruntime.quantization import QuantType, quantize_dynamic

                written = Path(scratch) / "int8.onnx"
                # Per channel: MiniLM's pooled vectors keep cosine 0.994 with fp32 on HotpotQA
                # paragraphs, against 0.76 with one scale per weight matrix. Signed weights: ONNX
                # Runtime's u8-activation x s8-weight kernels run twice as fast on AVX2 as u8 x u8
                # (MiniLM, one text at a time: 139 against 70 chunks/s) for the same cosine.
                # The feed-forward output layers stay fp32: their inputs, after GELU, are skewed
                # with outliers that one activation scale per batch resolves badly (first-retrieval
                # nDCG@10 -0.006 on HotpotQA with them quantised, -0.001 without).
                per_channel = quantise == "per-channel"
                kept = [node.name for node in onnx.load(str(plain)).graph.node
                        if node.op_type == "MatMul" and _FEED_FORWARD_OUT.search(node.name)] if per_channel else []
                quantize_dynamic(str(plain), str(written), per_channel=per_channel, weight_type=QuantType.QInt8,
                                 nodes_to_exclude=kept)
            os.replace(written, target)
        finally:
            root.setLevel(level)
    return target


def export_encoder(model_dir: Path, target: Path, precision: str) -> Path:
    """Export a sentence-transformers directory's encoder (last hidden states), fp32 or int8."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    # Eager attention traces to plain ONNX operators; the default (SDPA) mask code does not.
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    vocab = model.config.vocab_size

    def batch(rows: int, width: int, padded_from: int) -> dict:
        ids = torch.randint(min(1000, vocab // 2), min(5000, vocab), (rows, width))  # ordinary tokens of this vocabulary
        mask = torch.ones(rows, width, dtype=torch.long)
        mask[-1, padded_from:] = 0  # a padded row, so the mask's arithmetic is traced
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}

    return export_onnx(model, target, "last_hidden_state", batch(2, 16, 9), batch(3, 41, 20),
                       quantise="per-channel" if precision == "int8" else None)


class OnnxEncoder:
    """Last hidden states of token id batches, from an exported encoder file (loaded on first use)."""

    def __init__(self, path: Path, threads: int | None = None):
        self.path = Path(path)
        self.threads = threads
        self._session = None
        self._lock = threading.Lock()

    def _loaded(self):
        with self._lock:
            if self._session is None:
                import onnxruntime as ort

                options = ort.SessionOptions()
                if self.threads:
                    options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
            return self._session

    def hidden_states(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """(batch, tokens, dim) float32 hidden states; token types, where the model takes them, are all zero."""
        session = self._loaded()
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        if any(i.name == "token_type_ids" for i in session.get_inputs()):
            feed["token_type_ids"] = np.zeros_like(input_ids)
        return session.run(["last_hidden_state"], feed)[0]


class OpenVinoEncoder:
    """Last hidden states from the same exported fp32 file, run by OpenVINO in bfloat16 (compiled on first use).

    OpenVINO's CPU plugin runs an fp32 graph's matrix products in bf16 when told to and the CPU
    multiplies bf16 natively (AMX, AVX512-BF16); elsewhere it keeps fp32, and :attr:`precision`
    says which it chose. Loading and compiling MiniLM takes about 0.4 s.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._compiled = None
        self._request = None
        self._token_types = False
        self._lock = threading.Lock()

    def _loaded(self):
        # Called under the lock: one infer request serves every call, one at a time.
        if self._compiled is None:
            import openvino

            self._compiled = openvino.Core().compile_model(
                str(self.path), "CPU", {"INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY"})
            self._request = self._compiled.create_infer_request()
            self._token_types = any("token_type_ids" in port.get_names() for port in self._compiled.inputs)
        return self._request

    @property
    def precision(self) -> str:
        """"bf16" or "f32": what OpenVINO runs the matrix products in on this CPU."""
        import openvino

        with self._lock:
            self._loaded()
            return "bf16" if self._compiled.get_property("INFERENCE_PRECISION_HINT") == openvino.Type.bf16 else "f32"

    def hidden_states(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """(batch, tokens, dim) float32 hidden states, as :meth:`OnnxEncoder.hidden_states` gives them."""
        with self._lock:
            request = self._loaded()
            feed = {"input_ids": input_ids, "attention_mask": attention_mask}
            if self._token_types:
                feed["token_type_ids"] = np.zeros_like(input_ids)
            return np.array(request.infer(feed)[self._compiled.output("last_hidden_state")], dtype=np.float32)
