"""divwrite: deviation-weighted post-training for diverse creative writing (Chung et al., 2025)."""

__version__ = "0.1.0"
