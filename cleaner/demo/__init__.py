"""Archives with planted artefacts (the demo, the development archive) and the demo run."""
