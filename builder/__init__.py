"""builder: build, test and publish VM images for hands-on infrastructure training."""

__version__ = "0.1.0"
