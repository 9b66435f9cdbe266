"""Write tests/reference/data/alliance_sim_large.csv (run from the repo root).

The data for the measurement-model references (make_measurement_reference.R): 2000 simulated
children, complete data, no clustering, raw (not reverse-scored) responses to items 1-4 of
every informant x occasion x subscale (reverse-keyed items among them: 2 and 4).
"""
from sem_models.datasets import simulate_alliance

SEED = 2000

df = simulate_alliance(seed=SEED, n=2000, missing=False, clustering=False)
items = [f"{i}_{o}_{d}{k}" for i in ("c", "t") for o in ("mid", "end")
         for d in ("bond", "task") for k in range(1, 5)]
out = df[["child_id", "format"] + items].copy()
out[items] = out[items].astype(int)
out.to_csv("tests/reference/data/alliance_sim_large.csv", index=False)
