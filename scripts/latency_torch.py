"""Quick torch-only latency of a release on real Kalapa scans (batch 1 median/p90, then batched lines/s).

python scripts/latency_torch.py   # models/vihtr-lite1, 2 threads; make bench is the full benchmark
"""

import glob
import statistics
import time

from vihtr.inference.predictor import Predictor

p = Predictor.from_release(["models/vihtr-lite1"], threads=2, backend="torch")
imgs = sorted(glob.glob("../shared/data/kalapa2023/images/1*/*.jpg"))[:32]
p.predict([imgs[0]])  # warm-up
ts = []
for im in imgs[:16]:
    t = time.perf_counter()
    p.predict([im])
    ts.append(1000 * (time.perf_counter() - t))
ts.sort()
print(f"batch1 ms median {statistics.median(ts):.1f} p90 {ts[int(0.9 * len(ts))]:.1f}")
t = time.perf_counter()
p.predict(imgs)
dt = time.perf_counter() - t
print(f"batched lines/s {len(imgs) / dt:.1f} ({len(imgs)} lines, batch_size {p.batch_size})")
