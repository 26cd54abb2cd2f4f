"""What an operator sees: probes, metrics, the request log, proxies."""
