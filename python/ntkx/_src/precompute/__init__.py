"""Tiled, resumable kernel matrices on disk (see `ntkx.precompute`).

Modules, one home each (fsync and atomic replacement live in `ntkx._src.durable`, shared
with the theory report):

* `inputs`: x1/x2 sources (arrays, ``.npy``, ``.npz``, Zarr), their fingerprint and
  the finiteness check, streamed in row blocks;
* `kernel`: the architecture (stax ``kernel_fn``, ``FcSpec``, ``CntkSpec``) as a
  picklable per-tile function and a JSON description;
* `manifest`: the per-tile completion records;
* `store`: the Zarr layout, its attributes and the durable tile write;
* `schedule`: the tile list and the local and Dask runners;
* `reader`: `StoredKernel`, the out-of-core reader.

zarr and dask are optional (the ``distributed`` extra): they are imported when a
store is made or opened, never when ``ntkx`` is imported.
"""
