"""The error differentially private releases add, measured per epsilon (run it as a module).

A neighbourhood of 60 homes using 0.5 kWh a half-hour each (30 kWh a cell), one member adding at
most 5 kWh a half-hour (the co-op's bound); 200 draws of OpenDP's Laplace mechanism per row.
"""

from __future__ import annotations

import numpy as np

from coopfed.node.release.privacy import private_cells

BOUND = 5.0
CELL_KWH, MEMBERS = 30.0, 60


def measure(cells: int, epsilon: float, draws: int = 200) -> tuple[float, float]:
    """(mean absolute kWh error of a cell, mean absolute member-count error)."""
    kwh, counts = np.full(cells, CELL_KWH), np.full(cells, MEMBERS, dtype=np.int64)
    errors = [private_cells(kwh, counts, epsilon, BOUND) for _ in range(max(1, draws // cells))]
    kwh_error = np.mean([np.abs(k - kwh).mean() for k, _ in errors])
    count_error = np.mean([np.abs(c - counts).mean() for _, c in errors])
    return float(kwh_error), float(count_error)


def main() -> None:
    print("| epsilon | cells | kWh error per cell | (% of 30 kWh) | member-count error |")
    print("| --- | --- | --- | --- | --- |")
    for cells in (1, 48):
        for epsilon in (0.1, 1.0, 10.0):
            kwh, count = measure(cells, epsilon, draws=2000)
            print(f"| {epsilon:g} | {cells} | {kwh:.1f} | {100 * kwh / CELL_KWH:.0f}% | {count:.1f} |")


if __name__ == "__main__":
    main()
