"""Values: the checkpoint encoding (codec), copies, input fingerprints and the checkpoint document format."""
