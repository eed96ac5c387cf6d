"""Torch modules, checkpoint loading and Beam ModelHandlers. No Beam IO and no paths here."""
