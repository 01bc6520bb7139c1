"""Vagrant boxes: the box-only image layer, the `.box` files per provider, and the box catalog."""
