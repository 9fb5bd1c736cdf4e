"""The gateway's endpoint adapters, each a thin layer over the request cycle (`ailab.gateway.cycle`)."""
