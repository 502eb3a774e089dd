"""The offline toy world: procedural images, captions, faces and biometric data in the real formats."""
