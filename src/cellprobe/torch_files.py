"""Reading torch files safely: ``torch.load(weights_only=True)`` only, so a file's pickled code never runs.

One reader for checkpoints and encoder weights, because torch's own refusal is unfit for users: it comes with a
pickle-protocol warning on stderr and advises re-running with ``weights_only=False``, i.e. executing the file.
Here a refusal is one line that says what the file holds and never points at unsafe loading.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

from cellprobe.errors import InputError

#: lines of torch's refusal that are advice (to load unsafely, to file an issue, to read the docs), not the cause
_ADVICE = ("Weights only load failed", "Please file an issue", "Check the documentation", "In PyTorch 2.6")


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
    """The first line of ``exc``'s message that states a cause, not torch's advice."""
    for line in str(exc).splitlines():
        line = line.strip().removeprefix("WeightsUnpickler error:").strip()
        if line and not line.startswith(_ADVICE):
            return line[:200]
    return type(exc).__name__
