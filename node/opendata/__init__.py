"""Flow 5, open data: Frictionless Data Packages of the co-op's k-anonymous neighbourhood profiles."""
