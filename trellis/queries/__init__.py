"""Reading the store back: runs, dataframes, checkpoints."""
