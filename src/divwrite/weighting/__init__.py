"""Deviation weighting (METHOD.md step 4) and DivPO's pairs (step 5): the embedders, their on-disk cache, deviations and weights."""
