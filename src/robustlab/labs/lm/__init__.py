"""Language-model lab: couplet-to-couplet generation on Persian classical poetry."""
