"""coopfed: a policy-as-code federation framework for data cooperatives."""

__version__ = "0.1.0"
