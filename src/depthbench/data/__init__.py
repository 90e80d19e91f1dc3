"""Data: image sources (folders, bundled `elpv`, generated `synthetic`), per-class split manifests,
dataset checks, transforms and the decoded cache. See docs/internals.md for the contract.

Import names from their modules (`data.sources.open_source`, `data.split.make_split`, ...): this
file imports nothing, so `data check` and the checks before torch loads stay torch-free.
"""
