"""cxclean's model side: artefact kinds, synthesis, backbones, training and detector bundles."""
