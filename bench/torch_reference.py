"""PyTorch CPU reference for bench/train-throughput.ts: the same networks, batch, optimizer, 2 threads.

Usage: python3 bench/torch_reference.py BATCH SECONDS  -> last stdout line is JSON {"seed-cnn": sps, "mlp": sps}
"""
import json
import sys
import time

import torch
from torch import nn

torch.set_num_threads(2)
BATCH = int(sys.argv[1]) if len(sys.argv) > 1 else 64
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 4.0


def seed_cnn():
    # Keras 'valid' 3x3 conv, 2x2 max pool, dense softmax (softmax folded into the cross-entropy loss).
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 13 * 13, 10))


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


def measure(model, x, y):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    batches = 0
    start = time.perf_counter()
    while batches < 10 or time.perf_counter() - start < SECONDS:
        step()
        batches += 1
    return batches * BATCH / (time.perf_counter() - start)


result = {
    "seed-cnn": measure(seed_cnn(), torch.rand(BATCH, 1, 28, 28), torch.randint(0, 10, (BATCH,))),
    "mlp": measure(mlp(), torch.rand(BATCH, 784), torch.randint(0, 10, (BATCH,))),
}
print(json.dumps(result))
