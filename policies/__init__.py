"""The default policy set (Rego, its tests, data.json), shipped as package data of coopfed."""
