"""Training dynamics from one cached spectrum of the kernel: the dense closed forms.

`phi` (the functions of a kernel per eigenvalue, shared with `ntkx._src.krylov`),
`spectrum` (the cached eigendecomposition), `mse` (`MSEDynamics`), `gp`
(`GPDynamics`), `cross_entropy` (`cross_entropy_flow`) and `nt_compat` (the
neural-tangents-style wrappers). The public names are re-exported by
`ntkx._src.dynamics`, which also documents the conventions and the numerics.
"""
