"""A real but small training run: an MLP on scikit-learn's bundled digits.

It exercises what synthetic objectives cannot (torch, a device, epochs with real noise) while
staying a few seconds a trial on a CPU and needing no download. The two objectives trade
accuracy against model size, so the search has a Pareto front worth looking at.
"""

from __future__ import annotations

import functools

import optuna
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

from objectives.synthetic import report_intermediate

EPOCHS = 15
"""Upper bound on epochs per trial (pruning may stop earlier)."""

SPLIT_SEED = 0
"""Fixed so every trial is scored on the same validation set."""

DEVICE_ATTR = "tui_hpo.device"
"""User attribute naming the device a trial trained on."""


@functools.cache
def _arrays() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    # Cached per process: a worker runs many trials and the split never changes.
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=0.2, random_state=SPLIT_SEED, stratify=y
    )
    scaler = StandardScaler().fit(x_train)
    return (
        torch.tensor(scaler.transform(x_train), dtype=torch.float32),
        torch.tensor(y_train, dtype=torch.long),
        torch.tensor(scaler.transform(x_val), dtype=torch.float32),
        torch.tensor(y_val, dtype=torch.long),
    )


def _build(trial: optuna.Trial, n_in: int, n_out: int) -> nn.Module:
    depth = trial.suggest_int("n_layers", 1, 3)
    width = trial.suggest_int("hidden", 16, 256, log=True)
    dropout = trial.suggest_float("dropout", 0.0, 0.5)
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(n_in if i == 0 else width, width), nn.ReLU(), nn.Dropout(dropout)]
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def objective(trial: optuna.Trial) -> tuple[float, float]:
    """Validation error and parameter count of an MLP trained on digits."""
    # Several workers share the machine's cores; more threads would only contend.
    torch.set_num_threads(1)
    torch.manual_seed(trial.number)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    x_train, y_train, x_val, y_val = (t.to(device) for t in _arrays())
    model = _build(trial, x_train.shape[1], 10).to(device)
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    weight_decay = trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
    batch_size = trial.suggest_categorical("batch_size", [16, 32, 64, 128])
    # The parameters' device carries the index ("cuda:0"), unlike the ``device`` asked for.
    trial.set_user_attr(DEVICE_ATTR, str(next(model.parameters()).device))

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    shuffle = torch.Generator().manual_seed(trial.number)
    n_params = float(sum(p.numel() for p in model.parameters()))

    val_error = 1.0
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(len(x_train), generator=shuffle).to(device)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            optimizer.zero_grad()
            loss_fn(model(x_train[idx]), y_train[idx]).backward()
            optimizer.step()

        model.eval()
        with torch.no_grad():
            correct = (model(x_val).argmax(dim=1) == y_val).sum().item()
        val_error = 1.0 - correct / len(y_val)
        report_intermediate(trial, val_error, epoch)

    return val_error, n_params


objective.directions = ["minimize", "minimize"]
objective.metric_names = ["error", "n_params"]
