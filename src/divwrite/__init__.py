"""divwrite: deviation-weighted post-training for diverse creative writing (Chung et al., 2025).

Subpackages, lowest first: `core` (what every stage runs), `data`, `weighting`, `training`,
`evaluation`, `ops` (running the pipeline); `cli` is the `divwrite` command.
"""
