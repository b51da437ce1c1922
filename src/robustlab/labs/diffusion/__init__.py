"""Diffusion lab: text-conditional diffusion with classifier-free guidance, and DreamBooth."""
