"""Reading torch files safely: ``torch.load(weights_only=True)`` only, so a file's pickled code never runs; and
what the tensors read may hold before a model takes them (:func:`tensor_value_problems`).

One reader for checkpoints and encoder weights, because torch's own refusal is unfit for users: it comes with a
pickle-protocol warning on stderr and advises re-running with ``weights_only=False``, i.e. executing the file.
Here a refusal is one line that says what the file holds and never points at unsafe loading.
"""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path
from typing import Any

from cellprobe.errors import InputError

#: lines of torch's refusal that are advice (to load unsafely, to file an issue, to read the docs), not the cause
_ADVICE = ("Weights only load failed", "Please file an issue", "Check the documentation", "In PyTorch 2.6",
           "Alternatively", "Re-running")


def load_torch_file(path: str | Path, what: str, map_location: Any = "cpu") -> Any:
    """The objects in torch file ``path`` (tensors and plain data only); ``what`` names the kind of file in
    errors ("checkpoint", "torch weights file"). A missing file raises FileNotFoundError for the caller to
    word; anything unreadable or unsafe is an InputError naming the file."""
    import torch

    path = Path(path)
    try:
        with warnings.catch_warnings():  # torch's note on the pickle protocol: not the user's concern
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as exc:
        raise InputError(path, f"not a loadable {what}: it holds pickled objects other than tensors and plain "
                               f"data ({_cause(exc)}), which cellprobe never unpickles") from None
    except Exception as exc:  # torch raises many types for torn or foreign files
        raise InputError(path, f"not a loadable {what} ({type(exc).__name__}: {_cause(exc)})") from None


def _cause(exc: BaseException) -> str:
    """The cause in ``exc``'s message, without torch's advice: the unpickler's own error where there is one (cut
    before its "Please use ... add_safe_globals", an allow-list of what the file asks to run), else the first
    line that is not advice (numbered options such as "(1) ... weights_only set to False" are)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    found = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    if found:
        return found.group(1).split(" Please use")[0].strip().rstrip(".")[:200]
    for line in text.splitlines():
        line = re.sub(r"^\(\d+\)\s*", "", line.strip())
        if line and not line.startswith(_ADVICE):
            return line[:200]
    return type(exc).__name__


def tensor_value_problems(expected: dict[str, Any], given: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(label, keys) of the ``given`` tensors a model with state ``expected`` would take but should not: not
    dense (sparse, quantized: the checks below and the model cannot read them), another kind of number than
    the model's (an integer tensor would be cast to float silently: near-zero weights), values that are not
    finite once cast to the model's dtype (float64's 1e300 is float32's inf), or a BatchNorm variance below
    zero. Any float precision is fine: published weights come in each. Keys missing from ``given`` or of
    another shape are the caller's to report."""
    import torch

    layouts, kinds, finite, variances, empty = [], [], [], [], []
    for key, model_tensor in expected.items():
        tensor = given.get(key)
        if tensor is None or tensor.shape != model_tensor.shape:
            continue
        if tensor.is_meta:  # a model built without memory saved as is: shapes, no values
            empty.append(key)
        elif tensor.layout != torch.strided or tensor.is_quantized:
            layouts.append(f"{key} ({str(tensor.layout).removeprefix('torch.')})")
        elif tensor.is_floating_point() != model_tensor.is_floating_point() or tensor.is_complex():
            kinds.append(f"{key} {str(tensor.dtype).removeprefix('torch.')} vs model "
                         f"{str(model_tensor.dtype).removeprefix('torch.')}")
        elif tensor.is_floating_point() and not bool(torch.isfinite(tensor.to(model_tensor.dtype)).all()):
            finite.append(key)
        elif key.endswith("running_var") and bool((tensor < 0).any()):
            variances.append(key)
    return [("tensors without values (device 'meta')", empty), ("tensors that are not dense", layouts),
            ("tensors of another kind of number", kinds),
            ("tensors with NaN or infinite values (in the model's precision)", finite),
            ("BatchNorm variances below zero", variances)]


#: keys named in one problem of :func:`state_problems` before "(+N more)"
SHOWN_KEYS = 6


def state_problems(expected: dict[str, Any], given: dict[str, Any], optional: set[str] | frozenset[str] = frozenset(),
                   ignored: tuple[str, ...] = ()) -> list[str]:
    """Why ``given`` cannot load strictly into a model whose state is ``expected``, one entry per kind of gap
    with its count and first keys: missing keys (but ``optional`` ones), unexpected keys (but those starting with
    ``ignored``), shape mismatches, then :func:`tensor_value_problems`. Empty when it fits. One wording for encoder
    weights and run checkpoints, which torch's strict load reports as a multi-line error."""
    missing = [k for k in expected if k not in given and k not in optional]
    unexpected = [k for k in given if k not in expected and not (ignored and k.startswith(ignored))]
    wrong = [f"{k} {tuple(given[k].shape)} vs model {tuple(v.shape)}" for k, v in expected.items()
             if k in given and hasattr(given[k], "shape") and given[k].shape != v.shape]
    problems = []
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", wrong),
                        *tensor_value_problems(expected, given)):
        if keys:
            more = f" (+{len(keys) - SHOWN_KEYS} more)" if len(keys) > SHOWN_KEYS else ""
            problems.append(f"{len(keys)} {label}: {', '.join(keys[:SHOWN_KEYS])}{more}")
    return problems
