"""Thin HTTP routes: parse with the protocol types, translate, run, encode."""
