"""The embedding service: one OpenCLIP model behind LitServe, text and image vectors over HTTP."""
