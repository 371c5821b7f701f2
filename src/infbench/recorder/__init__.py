"""Recording: outcomes into HDR histograms, the interval log and raw rows."""
