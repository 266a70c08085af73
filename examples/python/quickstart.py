#!/usr/bin/python3
"""3-tier Fashion-MNIST (coordinator -> 4 aggregators -> 32 workers) from Python."""
import os

import flight

config = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../configs/fmnist-3tier.yaml")
result = flight.run(config, rounds=5, output="runs/quickstart", quiet=True,
                    on_round=lambda r: print(f"round {r['round']}: accuracy {r['test_accuracy']:.3f}"))
print(f"final accuracy {result.summary['final_accuracy']:.3f}; results in {result.output_dir}")

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    raise SystemExit("matplotlib not installed (apt-get install python3-matplotlib); "
                     f"see {result.output_dir}/accuracy.svg")
rows = result.rows if isinstance(result.rows, list) else result.rows.to_dict("records")
plt.plot([r["end_s"] for r in rows], [r["test_accuracy"] for r in rows], marker="o")
plt.xlabel("seconds"), plt.ylabel("test accuracy"), plt.title("fmnist-3tier")
plt.savefig(os.path.join(result.output_dir, "accuracy.png"))
print(f"plot: {result.output_dir}/accuracy.png")
