"""Krylov solvers for kernels too large to factorize: products ``K @ V`` only.

`operators` (`as_operator`), `cg` (`cg_solve`), `lanczos` (`expm_multiply`,
`phi_multiply`, `mse_dynamics_iterative`) and `eigenpairs` (`top_eigenpairs`).
The public names are re-exported by `ntkx._src.iterative`, which documents them.
"""
