"""Epsilon of Poisson-sampled Gaussian DP-SGD with Google's dp-accounting (RdpAccountant).

Usage: dp_epsilon.py Q SIGMA STEPS DELTA  -> prints {"epsilon": ..., "order": ...}
"""
import json
import sys

import dp_accounting

q, sigma, steps, delta = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
acc = dp_accounting.rdp.RdpAccountant()
acc.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)
eps, order = acc.get_epsilon_and_optimal_order(delta)
print(json.dumps({"epsilon": eps, "order": float(order)}))
