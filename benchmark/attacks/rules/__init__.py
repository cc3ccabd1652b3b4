"""Step rules: how the core turns a direction into the next iterate (sign, DAG's L-inf step, APGD)."""
