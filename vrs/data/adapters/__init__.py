"""Converters from public dataset formats to the canonical format."""
