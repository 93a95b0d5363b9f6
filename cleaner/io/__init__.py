"""The foundation: reading images and archives, preprocessing, metadata. No ML; every other layer builds on it."""
