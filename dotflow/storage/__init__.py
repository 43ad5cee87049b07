"""Storage backends, one module per backend (memory, file, object store + S3 + GCS, SQL), and group commit (batch) with its segment store."""
