"""What a fit records per update and per epoch, and the estimates taken from it."""
from __future__ import annotations

import numpy as np
import torch

from ..params.schemes import MODEL_PARAM_NAMES


class History:
    """Per update: ``loss`` ``[B]``, ``loss.<term>``, ``param.<name>``, ``hyper.<name>``, ``epoch``,
    ``window``; per epoch: ``epoch_loss`` ``[B]``, ``epoch_train_r`` ``[B]``, ``epoch_time``; and
    the last ``average_last`` gains ``[B, N, N]`` (their mean is the fitted coupling)."""

    def __init__(self, average_last: int):
        self.updates: dict[str, list] = {"loss": [], "epoch": [], "window": []}
        self.epochs: dict[str, list] = {"epoch_loss": [], "epoch_train_r": [], "epoch_time": []}
        self.gains = LastRecords(average_last)
        self.average_last = average_last

    @property
    def n_updates(self) -> int:
        return len(self.updates["loss"])

    @torch.no_grad()
    def record_update(self, epoch: int, window: int, loss: np.ndarray, parts: dict, model, objective):
        """The update's loss, its terms, the parameters after the step and the hyper-parameters
        (values only: no autograd graph is recorded for them)."""
        u = self.updates
        u["loss"].append(loss)
        u["epoch"].append(epoch)
        u["window"].append(window)
        for name, v in parts.items():
            u.setdefault("loss." + name, []).append(v.detach().cpu().numpy().copy())
        for name in model.fitted:
            u.setdefault("param." + name, []).append(model.value(name).detach().cpu().numpy().copy())
        for name, v in objective.hyperparameters().items():
            u.setdefault("hyper." + name, []).append(v.cpu().numpy().copy())
        if model.gains is not None:
            self.gains.append(model.gains)

    def record_epoch(self, loss: np.ndarray, train_r: np.ndarray, seconds: float):
        self.epochs["epoch_loss"].append(loss)
        self.epochs["epoch_train_r"].append(train_r)
        self.epochs["epoch_time"].append(seconds)

    def arrays(self, B: int) -> dict:
        """Every record stacked: name -> ``[U, ...]`` or ``[E, ...]`` numpy."""
        out = {k: np.stack(v) if v else np.zeros((0, B)) for k, v in self.updates.items()}
        out.update({k: np.stack(v) if v else np.zeros((0, B)) for k, v in self.epochs.items()})
        return out

    def estimates(self, model, arrays: dict) -> tuple[dict, dict, torch.Tensor | None]:
        """``(fitted, fitted_hyper, gains)``: means over the last ``average_last`` updates (fixed
        parameters: their value); gains ``[B, N, N]`` or None."""
        n, k = self.n_updates, self.average_last
        fitted = {}
        for name in MODEL_PARAM_NAMES:
            key = "param." + name
            fitted[name] = (arrays[key][-k:].mean(axis=0) if key in arrays and n
                            else model.value(name).detach().cpu().numpy().copy())
        hyper = {key[len("hyper."):]: v[-k:].mean(axis=0) for key, v in arrays.items()
                 if key.startswith("hyper.") and n}
        gains = self.gains.ordered().mean(0) if len(self.gains) else None
        return fitted, hyper, gains

    # ---------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict:
        """Tensors and plain containers only (a checkpoint is loaded with ``weights_only=True``)."""
        return dict(updates=_to_tensors(self.updates), epochs=_to_tensors(self.epochs), gains=self.gains.snapshot())

    def load_state_dict(self, state: dict):
        self.updates, self.epochs = _to_numpy(state["updates"]), _to_numpy(state["epochs"])
        self.gains = LastRecords(self.average_last, state["gains"])


class LastRecords:
    """The last ``k`` records of a tensor (the gains ``[B, N, N]`` of every update), oldest first, in
    one ring buffer ``[<= k, ...]`` that grows to k: an update copies into it instead of keeping a
    clone, and a checkpoint pickles one tensor instead of k. ``records``: a ``[n, ...]`` tensor or a
    list (checkpoints written before the buffer), oldest first."""

    def __init__(self, k: int, records=None):
        self.k, self.buf, self.count = k, None, 0
        if records is not None and len(records):
            records = torch.stack(list(records)) if isinstance(records, (list, tuple)) else records
            self.buf = records[-k:].clone()
            self.count = self.buf.shape[0]

    def __len__(self) -> int:
        return min(self.count, self.k)

    def append(self, t: torch.Tensor) -> None:
        t = t.detach()
        if self.buf is None or self.count == self.buf.shape[0] < self.k:
            grown = t.new_empty((min(self.k, max(8, 2 * self.count)), *t.shape))
            if self.buf is not None:
                grown[:self.count].copy_(self.buf)
            self.buf = grown
        self.buf[self.count % self.k].copy_(t)
        self.count += 1

    def ordered(self) -> torch.Tensor:
        """``[len, ...]``, oldest first (a view of the buffer until it has wrapped)."""
        if self.count <= self.k:
            return self.buf[:self.count]
        start = self.count % self.k
        return torch.cat([self.buf[start:], self.buf[:start]])

    def snapshot(self):
        """The records as one tensor of their own (what a checkpoint holds: a view would pickle
        the whole buffer), or ``[]`` when there are none."""
        if not len(self):
            return []
        records = self.ordered()
        return records.clone() if self.count <= self.k else records


def _to_tensors(records: dict) -> dict:
    """One stacked tensor per record (``[U, ...]``): a checkpoint pickles a few tensors, not one
    per update and record (thousands by the last epoch of a windowed fit)."""
    return {k: torch.from_numpy(np.stack(v)) if v else [] for k, v in records.items()}


def _to_numpy(records: dict) -> dict:
    """Back to one entry per update; also reads checkpoints written before records were stacked
    (a list of tensors or numbers per record)."""
    return {k: list(v.numpy()) if isinstance(v, torch.Tensor) else
            [x.numpy() if isinstance(x, torch.Tensor) else x for x in v] for k, v in records.items()}


__all__ = ["History"]
