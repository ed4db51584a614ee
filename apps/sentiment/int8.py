"""The int8 scorer: a dynamically quantized copy of a trained classifier, and the rule that
decides, at train time, whether it scores texts.

Why: scoring is most of a stream worker's time (two MiniLM passes per document, the
classifier's and the topic encoder's), and int8 weights make the classifier's linear
layers (about 70% of a forward pass) cheaper on CPUs. Dynamic quantization
(``torch.ao.quantization.quantize_dynamic``: int8 weights, activations quantized per batch)
scored the stream benchmark's headlines 1.2-2.0x as fast as float32 (median of interleaved
runs about 1.5x) on 2 cores shared with other jobs, 2026-12-07.
An ONNX export run by ONNX Runtime with int8 weights was faster still on the same texts
(about 1.4x the torch int8 scorer), but needs two more packages (``onnx``,
``onnxruntime``) and an export step; it is measured in the issue's report, not shipped.

The rule, fixed before any run: the int8 model is used when its validation macro-F1 is
within 0.5 points (:data:`MAX_F1_DROP`) of the full-precision model's, both computed on the
same validation rows at train time. Both figures (and the test figures of both) are saved
in the model folder (:data:`INT8_INFO`) and in the registry entry's ``info["int8"]``, so
``aigc sentiment models --json`` shows what was decided and why. The int8 weights are
saved beside the trained ones (:data:`INT8_WEIGHTS`), so what scores is what was validated.
``AIGC_SENTIMENT_PRECISION=full`` (or ``full_precision=True`` when loading) forces full
precision, ``=int8`` the saved int8 weights (to measure them where the rule said no); on a
GPU the full-precision model always scores (int8 kernels are CPU ones).
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aigc_apps.errors import DataError
from aigc_apps.fileio import atomic_write
from aigc_apps.settings import Settings, get_settings

INT8_WEIGHTS = "int8_weights.pt"
INT8_INFO = "int8.json"
MAX_F1_DROP = 0.005  # 0.5 macro-F1 points


def quantize(model: Any) -> Any:
    """A CPU copy of ``model`` with every ``nn.Linear`` as a dynamic int8 layer (the model
    given is left as it was)."""
    cpu = copy.deepcopy(model).to("cpu").eval()
    import torch  # here, not at import: commands that touch no model must not load torch

    with warnings.catch_warnings():  # torch 2.x points to torchao for new code; same kernels
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(cpu, {torch.nn.Linear}, dtype=torch.qint8)


@dataclass(frozen=True)
class Int8Decision:
    """Validation macro-F1 of both models and what the rule made of them."""

    full_macro_f1: float
    int8_macro_f1: float
    full_test: dict[str, float] | None = None  # accuracy, macro_f1 (pooled and per source)
    int8_test: dict[str, float] | None = None
    max_drop: float = MAX_F1_DROP

    @property
    def use_int8(self) -> bool:
        return self.int8_macro_f1 >= self.full_macro_f1 - self.max_drop - 1e-9

    def to_dict(self) -> dict[str, Any]:
        return {"rule": f"int8 when its validation macro-F1 >= full precision's - "
                        f"{self.max_drop * 100:g} points",
                "validation_macro_f1_full": round(self.full_macro_f1, 4),
                "validation_macro_f1_int8": round(self.int8_macro_f1, 4),
                "max_drop": self.max_drop, "use_int8": self.use_int8,
                "test_full": self.full_test, "test_int8": self.int8_test}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Int8Decision:
        return cls(float(data["validation_macro_f1_full"]),
                   float(data["validation_macro_f1_int8"]), data.get("test_full"),
                   data.get("test_int8"), float(data.get("max_drop", MAX_F1_DROP)))


def save_int8(quantized: Any, folder: Path, decision: Int8Decision) -> None:
    """The int8 weights and the decision, each written whole or not at all."""
    import torch

    buffer = io.BytesIO()
    torch.save(quantized.state_dict(), buffer)
    atomic_write(folder / INT8_WEIGHTS, buffer.getvalue())
    atomic_write(folder / INT8_INFO, json.dumps(decision.to_dict(), indent=2) + "\n")


def read_decision(folder: Path) -> Int8Decision | None:
    """The decision saved with the model; None for a model trained before int8 existed."""
    path = folder / INT8_INFO
    if not path.is_file() or not (folder / INT8_WEIGHTS).is_file():
        return None
    try:
        return Int8Decision.from_dict(json.loads(path.read_text("utf-8")))
    except (ValueError, KeyError, TypeError):
        raise DataError(f"{path}: not a valid int8 decision; delete it to score in full "
                        "precision") from None


def wanted_precision(full_precision: bool | None = None, settings: Settings | None = None) -> str:
    """``full`` when asked for (argument, else the settings' ``sentiment_precision``, from
    ``AIGC_SENTIMENT_PRECISION``), else ``auto``: int8 where the saved rule chose it;
    ``int8`` (the setting only) scores with the saved int8 weights whatever the rule said,
    to measure them."""
    if full_precision is not None:
        return "full" if full_precision else "auto"
    return (settings or get_settings()).sentiment_precision


def load_int8(full_model: Any, folder: Path) -> Any:
    """The saved int8 model: ``full_model`` quantized (the module layout), then the saved
    int8 weights loaded into it."""
    import torch

    quantized = quantize(full_model)
    with warnings.catch_warnings():  # packed int8 weights still go through TypedStorage
        warnings.simplefilter("ignore", UserWarning)
        state = torch.load(folder / INT8_WEIGHTS, map_location="cpu", weights_only=True)
    quantized.load_state_dict(state)
    return quantized.eval()


def _figures(pooled: Any, by_source: list[Any], names: list[str]) -> dict[str, float] | None:
    """Accuracy and macro-F1 of one split, pooled and (with several sources) per source."""
    if pooled is None:
        return None
    found = {"accuracy": round(pooled.accuracy, 4), "macro_f1": round(pooled.macro_f1, 4)}
    if len(names) > 1:
        for name, report in zip(names, by_source, strict=True):
            if report is not None:
                found |= {f"{name}_accuracy": round(report.accuracy, 4),
                          f"{name}_macro_f1": round(report.macro_f1, 4)}
    return found


def decide_int8(model: Any, sources: list[Any], validation: Any,
                test: tuple[Any, list[Any]]) -> tuple[Any, Int8Decision] | None:
    """Quantize ``model`` (a full-precision :class:`~.classifier.SentimentModel`), score
    the validation and test rows of ``sources`` with it, and apply the rule against the
    full model's ``validation`` report and ``test`` (pooled, per source) reports.
    None without validation rows: nothing to decide on, full precision it stays."""
    from .sources import evaluate_sources

    if validation is None:
        return None
    quantized = quantize(model.classifier.model)
    int8_val, _ = evaluate_sources(model.with_network(quantized), sources, "validation")
    int8_test = evaluate_sources(model.with_network(quantized), sources, "test")
    assert int8_val is not None  # the same rows as ``validation``
    names = [s.name for s in sources]
    decision = Int8Decision(validation.macro_f1, int8_val.macro_f1,
                            _figures(*test, names), _figures(*int8_test, names))
    return quantized, decision
