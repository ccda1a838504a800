"""Train an MLP on scikit-learn's bundled digits: an ordinary training script, with flags and
printed metrics, that knows nothing of tui-hpo or Optuna.

    python train_digits.py --lr 0.01 --hidden 64 --epochs 15

Each epoch prints a line like ``epoch 3 train_loss: 0.412 val_loss: 0.301 val_acc: 0.914``,
the way many training scripts do; ``digits_sweep.yaml`` tunes it through those lines. It uses
the GPU it is given (``CUDA_VISIBLE_DEVICES``) when there is one, and needs no download.
"""

from __future__ import annotations

import argparse
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    from torch import nn

    torch.set_num_threads(1)  # several trials share the machine's cores
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=0.2, random_state=0, stratify=y
    )
    scaler = StandardScaler().fit(x_train)
    x_train = torch.tensor(scaler.transform(x_train), dtype=torch.float32, device=device)
    x_val = torch.tensor(scaler.transform(x_val), dtype=torch.float32, device=device)
    y_train = torch.tensor(y_train, dtype=torch.long, device=device)
    y_val = torch.tensor(y_val, dtype=torch.long, device=device)

    layers: list[nn.Module] = []
    width_in = x_train.shape[1]
    for _ in range(args.layers):
        layers += [nn.Linear(width_in, args.hidden), nn.ReLU(), nn.Dropout(args.dropout)]
        width_in = args.hidden
    model = nn.Sequential(*layers, nn.Linear(width_in, 10)).to(device)
    if args.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    shuffle = torch.Generator().manual_seed(args.seed)
    print(f"training on {device} with {sum(p.numel() for p in model.parameters())} params")
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=shuffle).to(device)
        total = 0.0
        for start in range(0, len(order), args.batch_size):
            batch = order[start : start + args.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        model.eval()
        with torch.no_grad():
            logits = model(x_val)
            val_loss = float(loss_fn(logits, y_val))
            val_acc = float((logits.argmax(1) == y_val).float().mean())
        if val_loss != val_loss:  # NaN: a learning rate far too high
            print(f"epoch {epoch}: loss diverged", file=sys.stderr)
            return 1
        print(
            f"epoch {epoch} train_loss: {total / len(order):.4f} "
            f"val_loss: {val_loss:.4f} val_acc: {val_acc:.4f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
