"""Native runtime: what can run on the host, supervised as child processes of `ailab up --runtime native`."""
