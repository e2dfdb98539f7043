"""Data layer: NLB NWB files (download, synthetic generation, local checks) and nlb_tools tensors."""
