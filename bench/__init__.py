"""sandbay benchmarks: every figure next to raw Docker measured in the same run."""
