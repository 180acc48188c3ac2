"""The foundation: errors, settings, logging, masking, timestamps: what every layer
above may use. It imports nothing else of the package."""
